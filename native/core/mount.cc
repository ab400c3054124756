#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>

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

bool Mount(const char* source, const char* target, const char* fstype, const MountOptions& opts,
           SysError* error) {
  const unsigned long flags = opts.flags & ~(kPropagationMask);
  const bool is_bind = (flags & MS_BIND) && !(flags & MS_REMOUNT);
  const char* data = opts.data.empty() ? nullptr : opts.data.c_str();

  if (mount(source, target, fstype, flags, data) != 0) {
    error->Set(errno, "mount", source, target);
    return false;
  }

  auto undo = [&](int err) {
    error->Set(err, "mount", source, target);
    umount2(target, UMOUNT_NOFOLLOW);
    return false;
  };

  if (opts.propagation != 0 && mount(nullptr, target, nullptr, opts.propagation, nullptr) != 0) {
    return undo(errno);
  }

  if (is_bind && (flags & kBindRemountFlags)) {
    const unsigned long remount =
        MS_REMOUNT | MS_BIND | (flags & (kBindRemountFlags | kAtimeFlags));
    if (mount(nullptr, target, nullptr, remount, nullptr) != 0) return undo(errno);
  }
  return true;
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
