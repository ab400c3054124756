// Runs every registered case; prints one line per case and a closing "N passed, N failed".
#include <cstring>

#include "check.h"

int main(int argc, char** argv) {
  int passed = 0, failed = 0, skipped = 0;
  for (const kata_test::Case& c : kata_test::Cases()) {
    if (argc > 1 && std::strstr(c.name, argv[1]) == nullptr) continue;
    const int before = kata_test::Failures();
    kata_test::SkipReason() = nullptr;
    c.fn();
    const bool ok = kata_test::Failures() == before;
    if (ok && kata_test::SkipReason() != nullptr) {
      std::printf("skip %s: %s\n", c.name, kata_test::SkipReason());
      ++skipped;
      continue;
    }
    std::printf("%s %s\n", ok ? "ok" : "not ok", c.name);
    (ok ? passed : failed)++;
  }
  if (skipped > 0) {
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  } else {
    std::printf("%d passed, %d failed\n", passed, failed);
  }
  return failed == 0 ? 0 : 1;
}
