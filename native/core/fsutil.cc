#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "mountinfo.h"

#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x2000
#endif

namespace kata {
namespace {

// Owns a file descriptor; closes it on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::vector<std::string> Components(const std::string& rel) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    if (end > start) parts.emplace_back(rel.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string Join(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

// The root comes from the sandbox's configuration, not from a request: creating it like
// `mkdir -p` is fine.
bool MakeRoot(const std::string& root, SysError* error) {
  for (size_t i = 1; i <= root.size(); ++i) {
    if (i != root.size() && root[i] != '/') continue;
    std::string prefix = root.substr(0, i);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      error->Set(errno, "mkdir", prefix);
      return false;
    }
  }
  return true;
}

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

// Entry names of an open directory (the fd is duplicated; the caller keeps its own).
bool ListDir(int dirfd, std::vector<std::string>* names, SysError* error,
             const std::string& shown) {
  int dup_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) {
    error->Set(errno, "fcntl", shown);
    return false;
  }
  DIR* d = fdopendir(dup_fd);
  if (d == nullptr) {
    error->Set(errno, "fdopendir", shown);
    close(dup_fd);
    return false;
  }
  rewinddir(d);
  errno = 0;
  while (dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
      names->emplace_back(e->d_name);
    errno = 0;
  }
  const int err = errno;
  closedir(d);
  if (err != 0) {
    error->Set(err, "readdir", shown);
    return false;
  }
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

void UndoCreated(std::vector<std::string>* created) {
  for (auto it = created->rbegin(); it != created->rend(); ++it) {
    if (rmdir(it->c_str()) != 0 && errno == ENOTDIR) unlink(it->c_str());
  }
  created->clear();
}

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

bool ReadCount(const std::string& path, unsigned long* value, SysError* error) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.ok()) {
    error->Set(errno, "open", path);
    return false;
  }
  char buf[32];
  ssize_t n = pread(fd.get(), buf, sizeof(buf) - 1, 0);
  if (n < 0) {
    error->Set(errno, "read", path);
    return false;
  }
  buf[n] = '\0';
  char* end = nullptr;
  errno = 0;
  *value = std::strtoul(buf, &end, 10);
  if (errno != 0 || end == buf) {
    error->Set(EINVAL, "read", path);
    return false;
  }
  return true;
}

bool WriteCount(const std::string& path, unsigned long value, SysError* error) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.ok()) {
    error->Set(errno, "open", path);
    return false;
  }
  char buf[32];
  const int len = std::snprintf(buf, sizeof(buf), "%lu", value);
  if (write(fd.get(), buf, static_cast<size_t>(len)) != len) {
    error->Set(errno, "write", path);
    return false;
  }
  return true;
}

}  // namespace

bool CheckBeneath(const std::string& root, const std::string& rel, BeneathError* result,
                  std::string* bad, SysError* error) {
  *result = BeneathError::kNone;
  Fd fd(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd.ok()) {
    if (errno == ENOENT) return true;  // nothing exists yet, so nothing can redirect the path
    error->Set(errno, "open", root);
    return false;
  }
  const std::vector<std::string> parts = Components(rel);
  std::string shown = root;
  for (size_t i = 0; i < parts.size(); ++i) {
    shown = Join(shown, parts[i]);
    struct stat st;
    if (fstatat(fd.get(), parts[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return true;
      error->Set(errno, "lstat", shown);
      return false;
    }
    if (S_ISLNK(st.st_mode)) {
      *result = BeneathError::kSymlink;
      *bad = shown;
      return true;
    }
    const bool last = i + 1 == parts.size();
    if (last) return true;
    if (!S_ISDIR(st.st_mode)) {
      *result = BeneathError::kNotDir;
      *bad = shown;
      return true;
    }
    Fd next(openat(fd.get(), parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.ok()) {
      error->Set(errno, "open", shown);
      return false;
    }
    fd = std::move(next);
  }
  return true;
}

bool MakeBeneath(const std::string& root, const std::string& rel, unsigned mode, bool leaf_file,
                 std::vector<std::string>* created, SysError* error) {
  created->clear();
  if (!MakeRoot(root, error)) return false;
  Fd fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.ok()) {
    error->Set(errno, "open", root);
    return false;
  }
  const std::vector<std::string> parts = Components(rel);
  std::string shown = root;
  for (size_t i = 0; i < parts.size(); ++i) {
    const char* name = parts[i].c_str();
    shown = Join(shown, parts[i]);
    const bool last = i + 1 == parts.size();
    if (last && leaf_file) {
      Fd f(openat(fd.get(), name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (f.ok()) {
        created->push_back(shown);
        return true;
      }
      if (errno != EEXIST) {
        error->Set(errno, "open", shown);
        UndoCreated(created);
        return false;
      }
      struct stat st;
      if (fstatat(fd.get(), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        error->Set(errno, "lstat", shown);
        UndoCreated(created);
        return false;
      }
      if (!S_ISREG(st.st_mode)) {
        error->Set(S_ISLNK(st.st_mode) ? ELOOP : EEXIST, "open", shown);
        UndoCreated(created);
        return false;
      }
      return true;
    }
    if (mkdirat(fd.get(), name, static_cast<mode_t>(mode)) == 0) {
      created->push_back(shown);
    } else if (errno != EEXIST) {
      error->Set(errno, "mkdir", shown);
      UndoCreated(created);
      return false;
    }
    Fd next(openat(fd.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.ok()) {
      int err = errno;
      // O_DIRECTORY|O_NOFOLLOW on a symlink says ENOTDIR; say what it really is.
      struct stat st;
      if (err == ENOTDIR && fstatat(fd.get(), name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode))
        err = ELOOP;
      error->Set(err, "open", shown);
      UndoCreated(created);
      return false;
    }
    fd = std::move(next);
  }
  return true;
}

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

bool EnsureHugepages(const std::string& sysfs_root, unsigned long page_kb, unsigned long pages,
                     unsigned long* previous, unsigned long* allocated, SysError* error) {
  const std::string path = Join(
      sysfs_root, "kernel/mm/hugepages/hugepages-" + std::to_string(page_kb) + "kB/nr_hugepages");
  if (!ReadCount(path, previous, error)) return false;
  if (*previous >= pages) {
    *allocated = *previous;
    return true;
  }
  if (!WriteCount(path, pages, error)) return false;
  if (!ReadCount(path, allocated, error)) return false;
  if (*allocated < pages) {
    // Pages the request cannot use would only take memory from everything else.
    SysError ignored;
    WriteCount(path, *previous, &ignored);
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
