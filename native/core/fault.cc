#include "fault.h"

#include <signal.h>
#include <stdlib.h>

#include <atomic>

namespace kata {
namespace {

// The point to die at, read once; 0 when the variable is unset or not a positive number.
long KillAt() {
  static const long at = [] {
    const char* v = getenv("KATA_STORAGE_FAULT_KILL_AT");
    if (v == nullptr || *v == '\0') return 0L;
    char* end = nullptr;
    const long n = strtol(v, &end, 10);
    return *end == '\0' && n > 0 ? n : 0L;
  }();
  return at;
}

std::atomic<long> passed{0};

}  // namespace

void CrashPoint() {
  const long at = KillAt();
  if (at == 0) return;
  if (passed.fetch_add(1) + 1 == at) raise(SIGKILL);
}

}  // namespace kata
