// The steps of a request's storages carried out in one job on a pool thread, recording what they
// did so release and rollback can undo exactly that: each mount point walked and created beneath
// its allowed root, the mount onto it resolved beneath that same root, then the ownership Kata
// sets (fsGroup, ephemeral fsgid=). Release replays the record the other way, in the same kind of
// job (release.h). Kata does this per storage in StorageHandler::create_device and
// StorageDevice::cleanup.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "beneath.h"
#include "mount.h"
#include "options.h"
#include "release.h"
#include "syserror.h"

namespace kata {

struct MountPointSteps {
  std::string root;        // the allowed root
  std::string rel;         // the mount point below it
  unsigned mode = 0755;    // for directories it creates
  bool leaf_file = false;  // the mount point is a file (a device node is bound onto it)
};

// What a job did, in order: the paths it created and the mounts it made (each by its ID, so
// undoing it releases that mount and what came to sit on it, never another).
struct UndoLog {
  std::vector<std::string> created;
  std::vector<MountRef> mounted;
  // What a rollback released again (newest first), for the caller to report.
  std::vector<MountRef> unmounted;
};

// One storage of a request: the mount point, the mount, and the ownership steps after it.
struct StorageJob {
  MountPointSteps point;
  std::string source;
  // The source is a disk the runtime named (a node a device lookup found): it must be a block
  // device node, stat(2) following symlinks as mount(2) will.
  bool source_block = false;
  // The source is a shared filesystem's tag (virtio-fs, 9p) which the guest may have mounted at
  // the mount point already: such a mount, of this source and fstype, is accepted as it is.
  bool accept_premount = false;
  // Directories made beneath their allowed roots before the mount (overlayfs's upperdir and
  // workdir), their walks checked with the mount point's.
  std::vector<MountPointSteps> dirs;
  // Kata's local storage: the mount point is the storage, a directory, and nothing is mounted.
  // Its ownership steps are the local handler's: chown to fsgid, chmod to mode (plus setgid
  // when fsgid is set), then fsGroup, never skipped.
  bool directory_only = false;
  int64_t mode = -1;  // local's mode= when >= 0
  std::string fstype;
  MountOptions options;
  MountApi api = MountApi::kAuto;
  // Kata's set_ownership (fsGroup) when >= 0: ApplyFsGroup on the mount point.
  int64_t fs_group = -1;
  bool fs_group_read_only = false;  // `ro` was asked for: r instead of rw bits
  bool fs_group_on_root_mismatch = false;
  // An ephemeral storage's fsgid= when >= 0: the mount root's group, plus its setgid bit.
  int64_t fsgid = -1;
};

struct StorageOutcome {
  // What is in place: everything the job did, or after a rollback what could not be undone.
  UndoLog undo;
  // The mount came out read-only (statvfs ST_RDONLY), so the ownership steps were skipped, as
  // Kubernetes skips a read-only volume: a chown there could only fail with EROFS.
  bool ownership_skipped = false;
  uint64_t duration_ns = 0;  // the storage's steps, on the pool thread
};

// Why a mount point was refused before anything was done (ApplyStorages' first pass).
struct StorageRefusal {
  BeneathError stop = BeneathError::kNone;  // a symlink or a non-directory on the way
  std::string path;                         // where
};

// First checks every block source (S_ISBLK, else ERR_NOT_BLOCK_DEVICE or stat's errno in `error`)
// and every mount point's walk from its root (CheckBeneath: a symlink or non-directory on the way
// refuses the request, with `refusal` why); either stops the request with *failed its index
// before anything is touched. Then carries out `jobs` in order, one outcome each. On the first
// failure, sets *failed to its index and `error` to why, then undoes what that storage and every
// one before it did, newest first (ReleaseMount for each mount, then rmdir/unlink of what was
// created); an undo step that fails leaves its paths in the outcome and its reason in
// `undo_errors`. Returns true when all succeeded.
bool ApplyStorages(const std::vector<StorageJob>& jobs, std::vector<StorageOutcome>* outcomes,
                   size_t* failed, SysError* error, std::vector<SysError>* undo_errors,
                   StorageRefusal* refusal);

// At most this many storages run on the caller's thread: about 40 µs each, so the caller (Node's
// event loop) is held well under a millisecond; a larger request goes to the pool, where its two
// thread hand-offs are small next to its work. (128 was measured too: at 100 storages per request
// the adds gained what the unmounts lost, an unmount costing more on a thread that has been
// running than on a pool thread just woken.)
constexpr size_t kMaxStoragesHere = 16;

// True when `fstype` lives in memory only (tmpfs, ramfs): mounting, unmounting and walking it
// never waits on a device, a server or the disk.
bool MemoryOnly(std::string_view fstype);

// True when no step of `jobs` can wait on I/O, so the caller may run them on its own thread:
// each mounts a fresh memory-only filesystem (no bind, whose source may sit on a network or FUSE
// filesystem) on a directory beneath its allowed root, with ownership steps that walk that fresh,
// empty mount; and there are at most kMaxStoragesHere of them. The allowed roots themselves are
// the agent's own local directories (/run/kata-containers), as in Kata.
bool CannotBlock(const std::vector<StorageJob>& jobs);

}  // namespace kata
