// The per-mount flags of a bind: the source's flags, changed by the option words in order. One
// computation serves mount(2) (the MS_REMOUNT|MS_BIND remount) and the new API (mount_setattr on
// the open_tree clone), so both give the same mount.
#pragma once

#include <string>

#include "options.h"

namespace kata {

// The per-mount MS_* bits a bind can carry: ro, nosuid, nodev, noexec, nosymfollow, nodiratime,
// and exactly one atime mode (MS_NOATIME, MS_RELATIME or MS_STRICTATIME).
constexpr unsigned long kPerMountFlags = 0x1 | 0x2 | 0x4 | 0x8 | 0x100 | 0x800;  // see bindflags.cc
constexpr unsigned long kAtimeModeFlags =
    0x400 | (1UL << 21) | (1UL << 24);  // NOATIME RELATIME STRICTATIME

// statfs(2) f_flags (ST_*) of the mount `path` (or the O_PATH/open `fd` when >= 0) lies on, as
// MS_* per-mount bits with the atime mode made explicit. Returns false with errno set.
bool SourceMountFlags(const char* path, int fd, unsigned long* ms);

// True when the words touch any per-mount flag or the atime mode (a bind then needs its remount).
bool ChangesPerMountFlags(const MountOptions& opts);

// `source` (as from SourceMountFlags) changed by the words: set words set, clear words clear.
// The atime mode is one field: when a word sets a mode, the words decide it with mount(2)'s
// precedence (strictatime over noatime over relatime, whatever the order); a clear word that
// removes the source's mode leaves relatime, the kernel's default. Always names one mode.
unsigned long BindMountFlags(unsigned long source, const MountOptions& opts);

// When the kernel refused (EPERM) to go from `source` to `wanted`: the flags being cleared, as
// the words that set them ("nosuid, noexec"), or "" when nothing was being cleared.
std::string ClearedFlagWords(unsigned long source, unsigned long wanted);

// The explanation for an EPERM on that change: which flags the kernel would not clear (flags a
// more privileged mount namespace locked on the source), or "" when none were being cleared.
std::string LockedFlagsDetail(unsigned long source, unsigned long wanted);

}  // namespace kata
