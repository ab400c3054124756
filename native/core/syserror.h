// A failed system call, described the way Node describes one: errno, syscall name, paths.
#pragma once

#include <string>
#include <vector>

namespace kata {

struct SysError {
  int err = 0;               // positive errno; 0 means success
  const char* syscall = "";  // static string: "mount", "umount2", "statx", ...
  std::string path;          // Node's `path` (for mount: the source)
  std::string dest;          // Node's `dest` (for mount: the target)
  // What the kernel wrote to a filesystem context (fsopen fd) about the failure, e.g.
  // "tmpfs: Bad value for 'size'"; mount(2) sends the same text only to dmesg.
  std::vector<std::string> kernel_messages;
  // Our own explanation when errno alone misleads (which flag the kernel refused to clear).
  std::string detail;

  explicit operator bool() const { return err != 0; }
  void Set(int e, const char* sc, std::string p = {}, std::string d = {}) {
    err = e;
    syscall = sc;
    path = std::move(p);
    dest = std::move(d);
    kernel_messages.clear();
    detail.clear();
  }
};

}  // namespace kata
