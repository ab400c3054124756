#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

#include "bindflags.h"
#include "fault.h"
#include "mountinfo.h"
#include "newmount.h"
#include "release.h"

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x2000
#endif

namespace kata {
namespace {

constexpr unsigned long kPropagationMask = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE;

void SleepMs(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

long NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

// True when mount `id` sits exactly on the directory that `mountpoint_fd` names: its mountinfo
// line has the fd's mount as parent and the fd's current path as mount point (two dentries of
// one mount never share a path).
bool MountedOn(long id, int mountpoint_fd) {
  const long parent = FdInfoMountId(mountpoint_fd);
  char where[4096];
  const std::string link = "/proc/self/fd/" + std::to_string(mountpoint_fd);
  const ssize_t n = readlink(link.c_str(), where, sizeof(where));
  if (id < 0 || parent < 0 || n <= 0 || static_cast<size_t>(n) >= sizeof(where)) return false;
  const std::string path(where, static_cast<size_t>(n));
  std::vector<MountinfoEntry> mounts;
  SysError ignored;
  if (!ReadMountinfo(&mounts, &ignored)) return false;
  for (const MountinfoEntry& m : mounts) {
    if (m.id == id && m.parent == parent) return m.mount_point == path;
  }
  return false;
}

// Where the legacy path mounts and how it reaches the new mount again for the later steps.
struct LegacyTarget {
  const char* at;        // what mount(2) is given: the target, or /proc/self/fd/N under `beneath`
  const char* beneath;   // null unless the target was opened beneath a root
  const char* relative;  // the target below `beneath`
  int fd;                // the O_PATH fd `at` names, or -1
};

bool LegacyMount(const char* source, const char* target, const char* fstype,
                 const MountOptions& opts, const LegacyTarget& where, SysError* error,
                 uint64_t* mount_id) {
  if (RecursiveNeedsNewApi(opts)) {
    error->Set(EINVAL, "mount", source, target);
    return false;
  }
  const unsigned long flags = opts.flags & ~(kPropagationMask);
  const bool is_bind = (flags & MS_BIND) && !(flags & MS_REMOUNT);
  const char* data = opts.data.empty() ? nullptr : opts.data.c_str();

  // A bind's per-mount flags are its source's changed by the words (see bindflags.h). The
  // remount sets them all at once, so the source's must be read first, as libmount does.
  const bool remount_bind = is_bind && ChangesPerMountFlags(opts);
  unsigned long source_flags = 0;
  if (remount_bind && !SourceMountFlags(source, -1, &source_flags)) {
    error->Set(errno, "statfs", source, target);
    return false;
  }
  if (mount(source, where.at, fstype, flags, data) != 0) {
    error->Set(errno, "mount", source, target);
    return false;
  }
  if (mount_id != nullptr) *mount_id = 0;
  const bool more_steps = opts.propagation != 0 || remount_bind;
  if (!more_steps && mount_id == nullptr) return true;

  // An O_PATH fd names the directory below the new mount, and following its /proc link does not
  // step into mounts on top: the later steps need the mount itself, so open the target again
  // (still beneath the root, still refusing symlinks) and check that what we reached is a mount
  // sitting on the very directory the first fd holds, not one renamed into its place meanwhile.
  std::string mounted = target;
  int reopened = -1;
  if (where.beneath) {
    reopened = OpenBeneath(where.beneath, where.relative, target, error);
    const bool reached = reopened >= 0 && MountedOn(FdInfoMountId(reopened), where.fd);
    if (!reached && !more_steps) {
      // Only its ID was wanted: the mount itself is in place; its ID stays unknown (0), so its
      // release goes by path.
      if (reopened >= 0) close(reopened);
      *error = SysError();
      return true;
    }
    if (reopened < 0) return false;
    if (!reached) {
      // Only a concurrent rename inside the root gets here. Our mount stays (inside the root):
      // no path or fd we hold still names it, so it cannot be unmounted safely.
      error->Set(ESTALE, "openat2", target);
      close(reopened);
      return false;
    }
    mounted = "/proc/self/fd/" + std::to_string(reopened);
  }

  auto undo = [&](int err) {
    error->Set(err, "mount", source, target);
    // /proc/self/fd/N is a link by design, so it cannot be unmounted with UMOUNT_NOFOLLOW.
    umount2(mounted.c_str(), where.beneath ? 0 : UMOUNT_NOFOLLOW);
    return false;
  };
  bool ok = true;
  if (opts.propagation != 0 &&
      mount(nullptr, mounted.c_str(), nullptr, opts.propagation, nullptr) != 0) {
    ok = undo(errno);
  }
  if (ok && remount_bind) {
    const unsigned long wanted = BindMountFlags(source_flags, opts);
    if (mount(nullptr, mounted.c_str(), nullptr, MS_REMOUNT | MS_BIND | wanted, nullptr) != 0) {
      ok = undo(errno);
      if (error->err == EPERM) error->detail = LockedFlagsDetail(source_flags, wanted);
    }
  }
  if (ok && mount_id != nullptr) {
    // The mount reached again beneath the root and checked to sit on the directory mounted on
    // (above); without a root, the target as mount(2) resolved it a moment ago.
    if (reopened >= 0) {
      if (!MountIdOfFd(reopened, mount_id)) *mount_id = 0;
    } else {
      SysError unknown;
      if (!MountIdAt(target, mount_id, &unknown)) *mount_id = 0;
    }
  }
  if (reopened >= 0) close(reopened);
  return ok;
}

// `target` relative to `root`: "" (the root itself) becomes ".", an absolute path must lie below.
bool RelativeBeneath(const std::string& root, const char* target, std::string* relative) {
  if (target[0] != '/') {
    *relative = target;
    return true;
  }
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  const std::string t = target;
  if (r == "/") {
    *relative = t.substr(1);
  } else if (t == r) {
    relative->clear();
  } else if (t.size() > r.size() && t.compare(0, r.size(), r) == 0 && t[r.size()] == '/') {
    *relative = t.substr(r.size() + 1);
  } else {
    return false;
  }
  if (relative->empty()) *relative = ".";
  return true;
}

}  // namespace

MountApi EffectiveMountApi(MountApi requested, const MountOptions& opts) {
  if (opts.flags & (MS_REMOUNT | MS_MOVE)) return MountApi::kLegacy;
  if (requested == MountApi::kAuto) {
    if (!ProbeNewMountApi().Complete()) return MountApi::kLegacy;
    // A value fsconfig cannot take still fits mount(2)'s page; recursive attributes on an rbind
    // cannot go that way, and then the new API's EINVAL is the honest answer.
    if (!RecursiveNeedsNewApi(opts) && !FitsFsconfig(opts)) return MountApi::kLegacy;
    return MountApi::kNew;
  }
  return requested;
}

namespace {

bool MountAs(bool use_new, const char* source, const char* target, const char* fstype,
             const MountOptions& opts, SysError* error, const MountRequest& request);

// mount(2) with data over a page: the lowerdir entries relative to their common parent
// (CompactLowerdir), mounted from a thread whose working directory is that parent. chdir is
// process-wide, so the thread first takes a working directory of its own (unshare(CLONE_FS));
// the process's and every other thread's stay where they were, and it ends with the mount.
bool MountFromLowerdirParent(const char* source, const char* target, const char* fstype,
                             const MountOptions& opts, SysError* error,
                             const MountRequest& request) {
  MountOptions compacted = opts;
  std::string parent;
  if (!CompactLowerdir(opts.data, &parent, &compacted.data) ||
      compacted.data.size() > MaxMountDataLength()) {
    // ParseMountOptions refuses such data; never let the kernel cut it at a page.
    error->Set(E2BIG, "mount", source, target);
    return false;
  }
  const int dir = open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    error->Set(errno, "open", parent);
    return false;
  }
  bool ok = false;
  std::thread worker([&] {
    if (unshare(CLONE_FS) != 0) {
      error->Set(errno, "unshare", parent);
    } else if (fchdir(dir) != 0) {
      error->Set(errno, "fchdir", parent);
    } else {
      ok = MountAs(false, source, target, fstype, compacted, error, request);
    }
  });
  worker.join();
  close(dir);
  return ok;
}

bool MountAs(bool use_new, const char* source, const char* target, const char* fstype,
             const MountOptions& opts, SysError* error, const MountRequest& request) {
  if (!request.beneath) {
    if (use_new) return NewMount(source, target, -1, fstype, opts, error, request.mount_id);
    return LegacyMount(source, target, fstype, opts, {target, nullptr, nullptr, -1}, error,
                       request.mount_id);
  }
  std::string relative;
  if (!RelativeBeneath(request.beneath, target, &relative)) {
    error->Set(EXDEV, "openat2", target);  // what RESOLVE_BENEATH itself says about an escape
    return false;
  }
  const int fd = request.target_fd >= 0
                     ? request.target_fd
                     : OpenBeneath(request.beneath, relative.c_str(), target, error);
  if (fd < 0) return false;
  bool ok;
  if (use_new) {
    ok = NewMount(source, target, fd, fstype, opts, error, request.mount_id);
  } else {
    // mount(2) follows the /proc link to exactly the object the fd holds; a later rename or
    // symlink at the path cannot change what it names.
    const std::string at = "/proc/self/fd/" + std::to_string(fd);
    ok = LegacyMount(source, target, fstype, opts,
                     {at.c_str(), request.beneath, relative.c_str(), fd}, error, request.mount_id);
  }
  if (fd != request.target_fd) close(fd);
  return ok;
}

}  // namespace

bool Mount(const char* source, const char* target, const char* fstype, const MountOptions& opts,
           SysError* error, const MountRequest& request) {
  CrashPoint();
  const bool use_new = EffectiveMountApi(request.api, opts) == MountApi::kNew;
  if (!use_new && opts.data.size() > MaxMountDataLength()) {
    return MountFromLowerdirParent(source, target, fstype, opts, error, request);
  }
  return MountAs(use_new, source, target, fstype, opts, error, request);
}

bool Remount(const char* target, const MountOptions& opts, MountApi api, MountApi* used,
             SysError* error) {
  const NewMountSupport& probe = ProbeNewMountApi();
  const bool use_new = api == MountApi::kNew || (api == MountApi::kAuto && probe.fspick &&
                                                 probe.fsconfig && FitsFsconfig(opts));
  *used = use_new ? MountApi::kNew : MountApi::kLegacy;
  if (use_new) return ReconfigureSuperblock(target, opts, error);
  if (opts.data.size() > MaxMountDataLength()) {
    // Only a new mount can take layers from a working directory; the kernel would cut this.
    error->Set(E2BIG, "mount", "none", target);
    return false;
  }
  struct statvfs st;
  if (statvfs(target, &st) != 0) {
    error->Set(errno, "statvfs", target);
    return false;
  }
  unsigned long keep = 0;
  if (st.f_flag & ST_NOSUID) keep |= MS_NOSUID;
  if (st.f_flag & ST_NODEV) keep |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) keep |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) keep |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) keep |= MS_RELATIME;
  const unsigned long flags = MS_REMOUNT | keep | (opts.flags & ~(MS_BIND | MS_REC | MS_MOVE));
  if (mount("none", target, nullptr, flags, opts.data.empty() ? nullptr : opts.data.c_str()) != 0) {
    error->Set(errno, "mount", "none", target);
    return false;
  }
  return true;
}

bool Umount(const char* target, const UmountOptions& opts, SysError* error) {
  CrashPoint();
  int flags = UMOUNT_NOFOLLOW;
  if (opts.detach) flags |= MNT_DETACH;
  if (opts.force) flags |= MNT_FORCE;
  if (opts.expire) flags |= MNT_EXPIRE;

  const long deadline = opts.busy_timeout_ms > 0 ? NowMs() + opts.busy_timeout_ms : 0;
  long backoff = 1;
  for (;;) {
    if (umount2(target, flags) == 0) return true;
    const int err = errno;
    if (err == EINTR) continue;
    const long now = deadline ? NowMs() : 0;
    if (err != EBUSY || now >= deadline) {
      error->Set(err, "umount2", target);
      return false;
    }
    SleepMs(std::min(backoff, deadline - now));
    backoff = std::min(backoff * 2, 100L);
  }
}

bool IsMountPoint(const char* path, bool* result, SysError* error) {
  struct statx stx;
  if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, &stx) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      *result = false;
      return true;
    }
    error->Set(errno, "statx", path);
    return false;
  }
  *result = (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
            (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
  return true;
}

bool IsMountPoint(int fd, bool* result, SysError* error) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE, &stx) != 0) {
    error->Set(errno, "statx", "");
    return false;
  }
  *result = (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
            (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
  return true;
}

}  // namespace kata
