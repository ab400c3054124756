// mount(2)/umount2(2) done the way a storage layer needs them.
#pragma once

#include <string>

#include "options.h"
#include "syserror.h"

namespace kata {

// The main mount (no propagation bits), then the propagation change in its own call, then for
// binds the remount that makes ro/nosuid/nodev/noexec real (the kernel ignores them on the first
// bind). If a later step fails the main mount is undone, so a failed call leaves nothing behind.
bool Mount(const char* source, const char* target, const char* fstype, const MountOptions& opts,
           SysError* error);

struct UmountOptions {
  bool detach = false;
  bool force = false;
  bool expire = false;
  int busy_timeout_ms = 0;  // retry EBUSY with back-off until this much time has passed
};

// Always UMOUNT_NOFOLLOW: a symlink planted at the target must not redirect the unmount.
bool Umount(const char* target, const UmountOptions& opts, SysError* error);

// True when `path` is the root of a mount (statx's STATX_ATTR_MOUNT_ROOT, exact for binds too).
// A missing path is not a mount point; other failures are reported.
bool IsMountPoint(const char* path, bool* result, SysError* error);

}  // namespace kata
