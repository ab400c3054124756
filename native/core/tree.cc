#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <string_view>

#include "dir.h"
#include "fd.h"
#include "mountinfo.h"

namespace kata {
namespace {

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x2000
#endif

// True when `name` in `dirfd` is the root of a mount (or on another device than its parent, for
// kernels that predate STATX_ATTR_MOUNT_ROOT).
bool IsMountRootAt(int dirfd, const char* name, dev_t parent_dev, bool* is_root, SysError* error,
                   const std::string& shown) {
  struct statx stx;
  if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, &stx) != 0) {
    error->Set(errno, "statx", shown);
    return false;
  }
  const bool by_attr = (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
                       (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
  const dev_t dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  *is_root = by_attr || (parent_dev != 0 && dev != parent_dev);
  return true;
}

// Visits the tree below `dirfd`, refusing (EBUSY) any entry that is a mount point: directories
// and files alike (a file bind-mounted into a volume is as much a mount as a directory), at any
// depth. With `remove` it also deletes what it visits, children first. RemoveTree walks twice: a
// scan that deletes nothing if any mount lies below, then the removal, which checks each entry
// again because a mount may have appeared in between.
bool WalkTree(int dirfd, dev_t dev, const std::string& shown, bool remove, SysError* error) {
  std::vector<std::string> names;
  if (!ListDir(dirfd, &names, error, shown)) return false;
  for (const std::string& name : names) {
    const std::string child = Join(shown, name);
    struct stat st;
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (remove && errno == ENOENT) continue;
      error->Set(errno, "lstat", child);
      return false;
    }
    bool mounted = false;
    if (!IsMountRootAt(dirfd, name.c_str(), dev, &mounted, error, child)) return false;
    if (mounted) {
      error->Set(EBUSY, S_ISDIR(st.st_mode) ? "rmdir" : "unlink", child);
      return false;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (remove && unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
        error->Set(errno, "unlink", child);
        return false;
      }
      continue;
    }
    Fd sub(openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.ok()) {
      error->Set(errno, "open", child);
      return false;
    }
    if (!WalkTree(sub.get(), dev, child, remove, error)) return false;
    if (remove && unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) {
      error->Set(errno, "rmdir", child);
      return false;
    }
  }
  return true;
}

// The first mount point (from /proc/self/mountinfo) at `dir` or anywhere below it, "" if none.
// This sees every mount by its path, including ones a walk cannot reach (under a directory that
// cannot be listed) and on kernels without STATX_ATTR_MOUNT_ROOT.
bool MountBelow(const std::string& dir, std::string* found, SysError* error) {
  found->clear();
  std::vector<MountinfoEntry> mounts;
  if (!ReadMountinfo(&mounts, error)) return false;
  const std::string prefix = dir == "/" ? "/" : dir + "/";
  for (const MountinfoEntry& m : mounts) {
    if (m.mount_point == dir || m.mount_point.compare(0, prefix.size(), prefix) == 0) {
      *found = m.mount_point;
      return true;
    }
  }
  return true;
}

}  // namespace

bool RemoveTree(const std::string& path, SysError* error) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;
    error->Set(errno, "lstat", path);
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      error->Set(errno, "unlink", path);
      return false;
    }
    return true;
  }
  bool mounted = false;
  if (!IsMountRootAt(AT_FDCWD, path.c_str(), 0, &mounted, error, path)) return false;
  if (mounted) {
    error->Set(EBUSY, "rmdir", path);
    return false;
  }
  Fd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.ok()) {
    error->Set(errno, "open", path);
    return false;
  }
  // Nothing is deleted until the whole tree is known to hold no mount: first every mount point
  // the kernel lists below the tree's real path, then every entry of the tree, files included.
  char real[PATH_MAX];
  const std::string link = "/proc/self/fd/" + std::to_string(fd.get());
  const ssize_t n = readlink(link.c_str(), real, sizeof(real) - 1);
  if (n > 0) {
    std::string below;
    if (!MountBelow(std::string(real, static_cast<size_t>(n)), &below, error)) return false;
    if (!below.empty()) {
      // Report it under the caller's spelling of the tree when it lies below it.
      const std::string shown = below.size() > static_cast<size_t>(n)
                                    ? Join(path, below.substr(static_cast<size_t>(n) + 1))
                                    : path;
      error->Set(EBUSY, "rmdir", shown);
      return false;
    }
  }
  if (!WalkTree(fd.get(), st.st_dev, path, /*remove=*/false, error)) return false;
  if (!WalkTree(fd.get(), st.st_dev, path, /*remove=*/true, error)) return false;
  if (rmdir(path.c_str()) != 0) {
    error->Set(errno, "rmdir", path);
    return false;
  }
  return true;
}

bool RemoveEntry(const std::string& path, SysError* error) {
  if (rmdir(path.c_str()) == 0) return true;
  if (errno == ENOTDIR) {
    if (unlink(path.c_str()) == 0) return true;
    error->Set(errno, "unlink", path);
    return false;
  }
  error->Set(errno, "rmdir", path);
  return false;
}

}  // namespace kata
