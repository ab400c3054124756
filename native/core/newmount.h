// Mounting through file descriptors: fsopen/fsconfig/fsmount/move_mount, open_tree for binds,
// mount_setattr for per-mount attributes, openat2 to reach a target without following symlinks.
// mount.cc decides when this path is used; this file only knows how to do it.
#pragma once

#include <cstdint>

#include "options.h"
#include "syserror.h"

namespace kata {

// Which of the calls this kernel, under this process's seccomp profile, lets us make. Probed once
// (with arguments no kernel accepts, so nothing happens) and cached: ENOSYS means an old kernel,
// EPERM a seccomp profile or a missing capability; either way mount(2) is what is left.
struct NewMountSupport {
  bool fsopen = false;
  bool fsconfig = false;
  bool fsmount = false;
  bool move_mount = false;
  bool open_tree = false;
  bool mount_setattr = false;
  bool openat2 = false;
  bool fspick = false;  // only for reconfiguring a mounted superblock (Remount)

  // Everything a mount through the new API may need (openat2 is separate: only `beneath` uses it).
  bool Complete() const {
    return fsopen && fsconfig && fsmount && move_mount && open_tree && mount_setattr;
  }
};
const NewMountSupport& ProbeNewMountApi();

// False when a data word is longer than fsconfig takes (255 bytes of key, 255 of value), while
// mount(2) takes a whole page. An overlay lowerdir= longer than that fits when this kernel takes
// its layers one by one (OverlayTakesLayersOneByOne) and each is at most 255 bytes: NewMount
// then hands them over as "lowerdir+".
bool FitsFsconfig(const MountOptions& opts);

// True when overlayfs takes "lowerdir+" (Linux 6.8+): probed once by parsing one layer in a
// filesystem context that is then dropped.
bool OverlayTakesLayersOneByOne();

// Mounts through the new API. `target_fd` >= 0 is the mount point already opened (O_PATH) and is
// what the mount lands on; otherwise `target` is resolved by move_mount. `target` is also what
// errors report as `dest`. All per-mount attributes are set while the mount is still detached, so
// it never appears at the target writable or with suid when it was asked not to; only the
// propagation change (which must see the parent it was attached to) follows the attach, and is
// undone with the mount if it fails.
// With `mount_id`, the attached mount's ID (release.h MountIdOfFd on the mount fd; 0 if none).
bool NewMount(const char* source, const char* target, int target_fd, const char* fstype,
              const MountOptions& opts, SysError* error, uint64_t* mount_id = nullptr);

// fspick(target) + fsconfig of the superblock flags and data words + FSCONFIG_CMD_RECONFIGURE:
// the new API's remount. Only the superblock of the mount at `target` changes; per-mount flags
// (nosuid, nodev, ...) stay as they are. `error->syscall` is "fspick" or "fsconfig", with the
// filesystem's own complaint in `kernel_messages` ("tmpfs: Too small a size for current use").
bool ReconfigureSuperblock(const char* target, const MountOptions& opts, SysError* error);

// Opens `relative` below the directory `root` with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS),
// as an O_PATH descriptor: no component may be a symlink or lead outside `root`, and the fd keeps
// naming what was checked however the path is changed afterwards. Where openat2 is missing
// (ENOSYS: Linux < 5.6, qemu-user) the same walk is done a component at a time with O_NOFOLLOW.
// Returns -1 and fills `error` (syscall "open" for `root`, "openat2" for the target, reported as
// `report_path`).
int OpenBeneath(const char* root, const char* relative, const char* report_path, SysError* error);

}  // namespace kata
