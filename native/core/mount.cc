#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "newmount.h"

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x2000
#endif

namespace kata {
namespace {

constexpr unsigned long kPropagationMask = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE;
// Per-mount-point flags that a bind only takes through MS_REMOUNT|MS_BIND.
constexpr unsigned long kBindRemountFlags =
    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW;
constexpr unsigned long kAtimeFlags = MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME;

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

}  // namespace

namespace {

// Where the legacy path mounts and how it reaches the new mount again for the later steps.
struct LegacyTarget {
  const char* at;        // what mount(2) is given: the target, or /proc/self/fd/N under `beneath`
  const char* beneath;   // null unless the target was opened beneath a root
  const char* relative;  // the target below `beneath`
};

bool LegacyMount(const char* source, const char* target, const char* fstype,
                 const MountOptions& opts, const LegacyTarget& where, SysError* error) {
  if (opts.recursive_flags) {
    error->Set(EINVAL, "mount", source, target);
    return false;
  }
  const unsigned long flags = opts.flags & ~(kPropagationMask);
  const bool is_bind = (flags & MS_BIND) && !(flags & MS_REMOUNT);
  const char* data = opts.data.empty() ? nullptr : opts.data.c_str();

  if (mount(source, where.at, fstype, flags, data) != 0) {
    error->Set(errno, "mount", source, target);
    return false;
  }
  const bool remount_bind = is_bind && (flags & kBindRemountFlags);
  if (opts.propagation == 0 && !remount_bind) return true;

  // An O_PATH fd names the directory below the new mount, and following its /proc link does not
  // step into mounts on top: the later steps need the mount itself, so open the target again
  // (still beneath the root, still refusing symlinks) and make sure it is a mount root.
  std::string mounted = target;
  int reopened = -1;
  if (where.beneath) {
    reopened = OpenBeneath(where.beneath, where.relative, target, error);
    struct statx stx;
    if (reopened < 0 || statx(reopened, "", AT_EMPTY_PATH, STATX_TYPE, &stx) != 0 ||
        !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
      // The path no longer leads to our mount, so there is no safe way to name it to undo it.
      if (reopened >= 0) {
        error->Set(ESTALE, "openat2", target);
        close(reopened);
      }
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
    const unsigned long remount =
        MS_REMOUNT | MS_BIND | (flags & (kBindRemountFlags | kAtimeFlags));
    if (mount(nullptr, mounted.c_str(), nullptr, remount, nullptr) != 0) ok = undo(errno);
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
    // A value fsconfig cannot take still fits mount(2)'s page; recursive attributes cannot go
    // that way, and then the new API's EINVAL is the honest answer.
    if (!opts.recursive_flags && !FitsFsconfig(opts)) return MountApi::kLegacy;
    return MountApi::kNew;
  }
  return requested;
}

bool Mount(const char* source, const char* target, const char* fstype, const MountOptions& opts,
           SysError* error, const MountRequest& request) {
  const bool use_new = EffectiveMountApi(request.api, opts) == MountApi::kNew;
  if (!request.beneath) {
    if (use_new) return NewMount(source, target, -1, fstype, opts, error);
    return LegacyMount(source, target, fstype, opts, {target, nullptr, nullptr}, error);
  }
  std::string relative;
  if (!RelativeBeneath(request.beneath, target, &relative)) {
    error->Set(EXDEV, "openat2", target);  // what RESOLVE_BENEATH itself says about an escape
    return false;
  }
  const int fd = OpenBeneath(request.beneath, relative.c_str(), target, error);
  if (fd < 0) return false;
  bool ok;
  if (use_new) {
    ok = NewMount(source, target, fd, fstype, opts, error);
  } else {
    // mount(2) follows the /proc link to exactly the object the fd holds; a later rename or
    // symlink at the path cannot change what it names.
    const std::string at = "/proc/self/fd/" + std::to_string(fd);
    ok = LegacyMount(source, target, fstype, opts, {at.c_str(), request.beneath, relative.c_str()},
                     error);
  }
  close(fd);
  return ok;
}

bool Umount(const char* target, const UmountOptions& opts, SysError* error) {
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

}  // namespace kata
