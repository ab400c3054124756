#include "fsgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dir.h"
#include "fd.h"

namespace kata {
namespace {

constexpr mode_t kRwMask = 0660;
constexpr mode_t kRoMask = 0440;
constexpr mode_t kExecMask = 0110;

// Children first, then the entry itself, as Kata does; symlinks are neither followed nor changed.
bool FsGroupAt(int dirfd, const char* name, const std::string& shown, gid_t gid, bool read_only,
               FsGroupResult* result, SysError* error) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    error->Set(errno, "lstat", shown);
    return false;
  }
  if (S_ISLNK(st.st_mode)) return true;
  mode_t mask = read_only ? kRoMask : kRwMask;
  if (S_ISDIR(st.st_mode)) {
    Fd sub(openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.ok()) {
      error->Set(errno, "open", shown);
      return false;
    }
    std::vector<std::string> names;
    if (!ListDir(sub.get(), &names, error, shown)) return false;
    for (const std::string& child : names) {
      if (!FsGroupAt(sub.get(), child.c_str(), Join(shown, child), gid, read_only, result, error))
        return false;
    }
    mask |= kExecMask | S_ISGID;
  }
  if (fchownat(dirfd, name, static_cast<uid_t>(-1), gid, AT_SYMLINK_NOFOLLOW) != 0) {
    error->Set(errno, "chown", shown);
    return false;
  }
  // Read again: chown may have cleared set-id bits.
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    error->Set(errno, "lstat", shown);
    return false;
  }
  if (fchmodat(dirfd, name, (st.st_mode | mask) & 07777, 0) != 0) {
    error->Set(errno, "chmod", shown);
    return false;
  }
  ++result->changed;
  return true;
}

}  // namespace

bool ApplyFsGroup(const std::string& path, unsigned gid, bool read_only, bool on_root_mismatch,
                  FsGroupResult* result, SysError* error) {
  *result = FsGroupResult{};
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    error->Set(errno, "lstat", path);
    return false;
  }
  if (on_root_mismatch && st.st_gid == gid) {
    const mode_t mask = (read_only ? kRoMask : kRwMask) | kExecMask;
    if ((st.st_mode & mask) == mask && (st.st_mode & S_ISGID)) {
      result->skipped = true;
      return true;
    }
  }
  return FsGroupAt(AT_FDCWD, path.c_str(), path, static_cast<gid_t>(gid), read_only, result, error);
}

}  // namespace kata
