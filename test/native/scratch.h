// What the core tests that mount share: one private mount namespace for the whole test program
// (entered once, on first use, so the host's mount table is never touched) and a scratch
// directory.
#pragma once

#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <string>

namespace kata_test {

// Null when mounting is possible here, else why not (the test then skips with that reason).
inline const char* EnterPrivateNamespace() {
  static const char* reason = []() -> const char* {
    if (geteuid() != 0) return "needs root";
    if (unshare(CLONE_NEWNS) != 0) return "unshare(CLONE_NEWNS) refused";
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      return "cannot make / private";
    return nullptr;
  }();
  return reason;
}

// A new directory under /tmp named after `what`, or "" when none could be made.
inline std::string TempDir(const char* what) {
  std::string tmpl = std::string("/tmp/kata-") + what + "-test-XXXXXX";
  const char* d = mkdtemp(tmpl.data());
  return d ? d : "";
}

}  // namespace kata_test
