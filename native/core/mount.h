// mount(2)/umount2(2) done the way a storage layer needs them.
#pragma once

#include <string>

#include "options.h"
#include "syserror.h"

namespace kata {

enum class MountApi {
  kAuto = 0,    // the new API when the kernel and seccomp allow every call of it and fsconfig
                // takes the data, else mount(2)
  kNew = 1,     // fsopen/fsconfig/fsmount/move_mount, open_tree, mount_setattr; fails if absent
  kLegacy = 2,  // mount(2) only
};

struct MountRequest {
  MountApi api = MountApi::kAuto;
  // When set, `target` (absolute and inside it, or relative to it) is opened with
  // openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) from this directory and the mount lands on that
  // fd: a component swapped for a symlink or `..` after the caller validated the path cannot
  // redirect it outside.
  const char* beneath = nullptr;
  // With `beneath`: the target already opened beneath it (MakeBeneathAt's leaf), used instead of
  // opening it again; the caller keeps it open.
  int target_fd = -1;
  // When set, receives the new mount's ID (release.h: MountIdKindHere()'s kind; 0 when it could
  // not be learnt), read from what names the mount itself, never from a path another process
  // could redirect: the new API's mount fd (one statx); with mount(2), the target reopened
  // beneath the root and checked to sit on the directory mounted on.
  uint64_t* mount_id = nullptr;
};

// kNew or kLegacy: what a mount with these options will use. Remounts and moves always take
// mount(2) (they create nothing for fsmount to hand back); under kAuto so do data values longer
// than fsconfig accepts.
MountApi EffectiveMountApi(MountApi requested, const MountOptions& opts);

// The main mount (no propagation bits), then the propagation change in its own call, then for
// binds the remount that makes ro/nosuid/nodev/noexec real (the kernel ignores them on the first
// bind). If a later step fails the main mount is undone, so a failed call leaves nothing behind.
// With the new API the attributes are set before the mount is attached, so the same holds.
// Recursive attributes on an rbind (RecursiveNeedsNewApi) need the new API: with mount(2) they
// are EINVAL; on a new superblock or a plain bind they are the plain flags mount(2) applies.
bool Mount(const char* source, const char* target, const char* fstype, const MountOptions& opts,
           SysError* error, const MountRequest& request = MountRequest());

// Remounts the mount at `target` with new superblock options (a tmpfs `size=`, say). The new API
// (fspick + fsconfig + FSCONFIG_CMD_RECONFIGURE) when `api` is kNew, or kAuto and the kernel has
// it and fsconfig takes the data; else mount(2) with MS_REMOUNT, keeping the mount's own
// nosuid/nodev/noexec/atime flags (statvfs), which a bare MS_REMOUNT would clear. `used` says
// which API ran.
bool Remount(const char* target, const MountOptions& opts, MountApi api, MountApi* used,
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
// The same for the file open at `fd` (an O_PATH descriptor will do).
bool IsMountPoint(int fd, bool* result, SysError* error);

}  // namespace kata
