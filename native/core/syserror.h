// The core's error records: a failed system call, described the way Node describes one (errno,
// syscall name, paths), and a device lookup's own failure (a code of ours and the value behind it).
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

// Our own error codes with the value that caused them; `err`/`syscall` say which system call
// failed underneath, when one did.
struct DeviceError {
  const char* code = nullptr;
  std::string value;
  std::string reason;
  int err = 0;
  const char* syscall = "";

  explicit operator bool() const { return code != nullptr; }
  void Set(const char* c, std::string v, std::string r, int e = 0, const char* sc = "") {
    code = c;
    value = std::move(v);
    reason = std::move(r);
    err = e;
    syscall = sc;
  }
};

}  // namespace kata
