// The one error record of the native layer: a failed system call described the way Node describes
// one (errno, syscall name, paths), or one of our own codes (code, the refused value, why), which
// may carry the errno that caused it. The binding turns it into the final JS error in one place.
#pragma once

#include <string>
#include <vector>

namespace kata {

struct SysError {
  int err = 0;               // positive errno; 0 (with no code) means success
  const char* syscall = "";  // static string: "mount", "umount2", "statx", ...
  std::string path;          // Node's `path` (for mount: the source)
  std::string dest;          // Node's `dest` (for mount: the target)
  // What the kernel wrote to a filesystem context (fsopen fd) about the failure, e.g.
  // "tmpfs: Bad value for 'size'"; mount(2) sends the same text only to dmesg.
  std::vector<std::string> kernel_messages;
  // Our own explanation when errno alone misleads (which flag the kernel refused to clear).
  std::string detail;
  const char* code = nullptr;  // our own code (a StorageError's), static: "ERR_INVALID_PCI_PATH"
  std::string value;           // the refused input
  std::string reason;          // what is wrong with it; empty for a message chosen by code

  explicit operator bool() const { return err != 0 || code != nullptr; }
  // A failed system call.
  void Set(int e, const char* sc, std::string p = {}, std::string d = {}) {
    *this = SysError();
    err = e;
    syscall = sc;
    path = std::move(p);
    dest = std::move(d);
  }
  // One of our codes, with the errno behind it when there is one.
  void Set(const char* c, std::string v, std::string r = {}, int e = 0, const char* sc = "") {
    *this = SysError();
    code = c;
    value = std::move(v);
    reason = std::move(r);
    err = e;
    syscall = sc;
  }
};

// Device lookups report in the one error record (a code, the refused value, the errno behind it).
using DeviceError = SysError;

}  // namespace kata
