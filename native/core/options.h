// Kata mount option parsing: option words -> mount(2) flags, propagation, data.
#pragma once

#include <string>
#include <string_view>

namespace kata {

struct MountOptions {
  unsigned long flags = 0;        // MS_* passed to the main mount(2)
  unsigned long propagation = 0;  // MS_{PRIVATE,SHARED,SLAVE,UNBINDABLE}[|MS_REC], applied separately
  // The flags a clear word (rw, suid, dev, exec, atime, ...) named last: a bind starts from its
  // source's flags, so "not set" and "cleared" differ there.
  unsigned long cleared = 0;
  std::string data;               // everything that is not a flag, comma-joined in order
  // runc's rro/rnosuid/rnodev/rnoexec as MS_* bits: only mount_setattr(AT_RECURSIVE) can apply
  // them, so the legacy API must refuse them; `recursive_word` is the first one, for that error.
  unsigned long recursive_flags = 0;
  std::string recursive_word;
};

enum class OptionError {
  kNone = 0,
  kLoop,      // "loop" needs losetup; an agent must refuse it rather than half-handle it
  kTooLong,   // data would not fit in the page the kernel copies
};

// `list` holds the caller's option elements separated by '\0' (so one string crosses from JS);
// each element is split on commas outside double quotes. Words apply in order, later wins.
// On error, `bad` receives the offending word (or the data string for kTooLong).
OptionError ParseMountOptions(std::string_view list, MountOptions* out, std::string* bad);

// The largest data string mount(2) passes through intact: the kernel copies one page and
// forces its last byte to NUL.
size_t MaxMountDataLength();

}  // namespace kata
