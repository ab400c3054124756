// Releasing what a job made, by the identity of each mount rather than by its path: a mount
// point's path may meanwhile hold nothing (someone unmounted it, or detached it lazily), another
// mount stacked on ours (mount propagation on an rshared volume), or one beneath it. Release
// unmounts the recorded mount and whatever is mounted on or beneath it (its descendants in the
// mount tree), children first, and never any other mount; a recorded mount already gone counts
// as released. Plain functions: inputs copied in, outcome out, callable from a pool thread or the
// JS thread alike.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mount.h"
#include "mountinfo.h"
#include "syserror.h"

namespace kata {

// A mount made by the package: where, and which mount it is.
struct MountRef {
  std::string path;
  // Of MountIdKindHere()'s kind; 0 when it could not be learnt (then released by path alone).
  uint64_t id = 0;
};

enum class MountIdKind {
  kUnique,  // statx STATX_MNT_ID_UNIQUE (Linux 6.8): never reused; statmount maps it to mountinfo's
  kPlain,   // statx STATX_MNT_ID (Linux 5.8): mountinfo's first field, reused once the mount goes
  kNone,    // neither: mountinfo's entry for the path
};

// Which kind of mount ID this process records, probed once (statx and statmount on "/").
MountIdKind MountIdKindHere();

// The ID (of MountIdKindHere()'s kind) of the mount a path walk to `path` reaches: the topmost
// one mounted there, or the one containing it. One statx (AT_SYMLINK_NOFOLLOW); on kernels
// without mount IDs in statx, mountinfo's last entry at `path`.
bool MountIdAt(const std::string& path, uint64_t* id, SysError* error);
// The ID of the mount an fd is on (statx AT_EMPTY_PATH): for the mount fd the new API holds, the
// new mount itself. False when this kernel's statx gives no mount ID (MountIdKind::kNone).
bool MountIdOfFd(int fd, uint64_t* id);
// The plain (mountinfo) ID of the mount an fd is on, from fdinfo's "mnt_id:" (Linux 3.15);
// -1 if unknown.
long FdInfoMountId(int fd);

// The same, of `kind` (which must be available here; kPlain and kNone always are): for tests of
// the fallbacks older kernels take.
bool MountIdAt(const std::string& path, MountIdKind kind, uint64_t* id, SysError* error);

// What one step of a release did to one mount.
struct UnmountStep {
  enum class Kind {
    kRecorded,    // the recorded mount was unmounted (or its unmount failed: `error`)
    kDescendant,  // a mount on or beneath it, unmounted first (or failed: `error`)
    kGone,        // the recorded mount was no longer there: released, nothing unmounted
  };
  Kind kind = Kind::kRecorded;
  std::string path;
  uint64_t duration_ns = 0;
  SysError error;
};

// Indexes into `table` of the mounts whose parent chain reaches `id` (not `id` itself), in the
// order they can be unmounted: deepest first, and among equals the newest (later in mountinfo)
// first, so a mount stacked on another, or one hiding another's path, goes before it.
std::vector<size_t> DescendantsChildrenFirst(const std::vector<MountinfoEntry>& table, long id);

// Releases `mount`. The fast path: statx the path, and when the mount there is the recorded one,
// one umount2 (UMOUNT_NOFOLLOW). Only when the ID differs, or umount2 says EBUSY or EINVAL, is
// mountinfo read: the descendants are unmounted children first, each only while it is the
// topmost mount at its path, then the recorded mount; EBUSY is retried for `opts`'
// busy_timeout_ms. True when the mount is gone (unmounted, or found gone). Each unmount made, or
// the finding that the mount was gone, is appended to `steps`.
bool ReleaseMount(const MountRef& mount, const UmountOptions& opts, std::vector<UnmountStep>* steps,
                  SysError* error);
// The same with `mount.id` of `kind` (as MountIdAt(path, kind, ...) gave it). `on_top`: the
// caller has just found the recorded mount the topmost one at its path, the fast path's statx.
bool ReleaseMount(const MountRef& mount, const UmountOptions& opts, MountIdKind kind,
                  std::vector<UnmountStep>* steps, SysError* error, bool on_top = false);

// One storage to release: its mounts and created paths as recorded, in the order they were made.
struct StorageRelease {
  std::vector<MountRef> mounted;
  std::vector<std::string> created;
  // Per created path: a directory tree made for the storage (overlay upper/work), removed with
  // its content by RemoveTree, rather than an entry removed only when empty.
  std::vector<bool> trees;
};

struct ReleaseOutcome {
  // The release that failed (the entry keeps its remaining mounts, newest last), or none.
  SysError error;
  size_t mounts_left = 0;
  // Created paths that could not be removed once the mounts were gone (not empty, EBUSY, EROFS):
  // best effort, so they are the caller's leftovers to retry, each with why. ENOENT counts as gone.
  std::vector<std::string> leftovers;
  std::vector<SysError> leftover_errors;
  // Every unmount made (and every recorded mount found gone), in order.
  std::vector<UnmountStep> steps;
  uint64_t duration_ns = 0;
};

// StorageDevice::cleanup for one storage: its mounts released newest first (ReleaseMount), then,
// only when they all went, what it created, newest first.
// `on_top`: RecordedOnTop() just found every recorded mount the topmost one at its path, so the
// first unmount of each goes by path without asking statx again (the same window the fast path's
// own statx-then-umount2 has; a statx is about a tenth of a tmpfs release).
void ReleaseStorage(const StorageRelease& release, const UmountOptions& umount,
                    ReleaseOutcome* outcome, bool on_top = false);

// ReleaseStorage for each of `releases`, in the order given; a failure of one does not stop the
// others.
void ReleaseStorages(const std::vector<StorageRelease>& releases, const UmountOptions& umount,
                     std::vector<ReleaseOutcome>* outcomes, bool on_top = false);

// True when every recorded mount of `releases` is still the topmost mount at its path, the root
// of the mount with its recorded ID (one statx each), so each release is the fast path's umount2
// unless something is mounted beneath it; false when one is not (gone, something stacked on it,
// unknown ID) or this kernel's statx gives no mount ID. A caller about to run a release on a thread
// that must not wait (memory-only mounts it made) runs it there only then: a mount found stacked on
// ours is someone else's, of any kind.
bool RecordedOnTop(const std::vector<StorageRelease>& releases);

// Whether each recorded mount is still in place, as a restarted process finds it: a mount with
// its ID (of MountIdKindHere()'s kind, mapped to mountinfo's by statmount for unique IDs) whose
// mount point is its path. A mount moved elsewhere, or gone, is not; one recorded without an ID
// is when anything is mounted at its path. One read of mountinfo for all of them.
bool RecordedMountsPresent(const std::vector<MountRef>& mounts, std::vector<bool>* present,
                           SysError* error);

}  // namespace kata
