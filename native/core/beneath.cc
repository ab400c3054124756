#include "beneath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "dir.h"
#include "fault.h"
#include "fd.h"

namespace kata {
namespace {

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

void UndoCreated(std::vector<std::string>* created) {
  for (auto it = created->rbegin(); it != created->rend(); ++it) {
    if (rmdir(it->c_str()) != 0 && errno == ENOTDIR) unlink(it->c_str());
  }
  created->clear();
}

// A lookup of a name that is not there makes and drops a negative dentry: ~3 µs each in a guest,
// 30 % of a storage's cost beyond the C loop's when a request's mount points are checked one by
// one. A name missing from the listing is taken as absent only where a lookup agrees: a
// case-sensitive filesystem we know (not a casefolded directory) that this process may search.

// <linux/fs.h>'s, spelled out: that header clashes with glibc's <sys/mount.h>.
constexpr unsigned long kFsIocGetFlags = _IOR('f', 1, long);
constexpr int kFsCasefoldFl = 0x40000000;

bool ListingMatchesLookup(int dir_fd) {
  struct statfs fs;
  if (fstatfs(dir_fd, &fs) != 0) return false;
  switch (static_cast<unsigned long>(fs.f_type)) {
    case TMPFS_MAGIC:
    case RAMFS_MAGIC:
    case EXT4_SUPER_MAGIC:  // ext2/3/4
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case F2FS_SUPER_MAGIC:
      break;
    default:
      return false;
  }
  // ext4, f2fs and tmpfs (6.13+) can fold case per directory.
  int flags = 0;
  if (ioctl(dir_fd, kFsIocGetFlags, &flags) == 0 && (flags & kFsCasefoldFl)) return false;
  return faccessat(dir_fd, ".", X_OK, AT_EACCESS) == 0;
}

// The type of `name` from the listing as fstatat would give it (st_mode's S_IFMT bits), 0 when
// the name is absent; false when the listing cannot say (no listing, or d_type unknown).
bool ListedType(const RootListing* listing, const std::string& name, mode_t* type) {
  if (listing == nullptr || !listing->ok) return false;
  auto it = listing->types.find(name);
  if (it == listing->types.end()) {
    *type = 0;
    return true;
  }
  if (it->second == DT_UNKNOWN) return false;
  *type = DTTOIF(it->second);
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
  return CheckBeneathAt(fd.get(), root, rel, result, bad, error);
}

RootListing ReadRootListing(int root_fd) {
  constexpr size_t kMaxEntries = 4096;
  RootListing d;
  if (!ListingMatchesLookup(root_fd)) return d;
  const int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return d;
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    close(fd);
    return d;
  }
  for (;;) {
    errno = 0;
    const dirent* e = readdir(dir);
    if (e == nullptr) {
      d.ok = errno == 0;
      break;
    }
    if (d.types.size() == kMaxEntries) break;
    d.types.emplace(e->d_name, e->d_type);
  }
  closedir(dir);
  if (!d.ok) d.types.clear();
  return d;
}

bool CheckBeneathAt(int root_fd, const std::string& root, const std::string& rel,
                    BeneathError* result, std::string* bad, SysError* error,
                    const RootListing* listing, BeneathReach* reach) {
  *result = BeneathError::kNone;
  Fd owned;  // the directory reached so far, once it is no longer the root
  int fd = root_fd;
  const std::vector<std::string> parts = Components(rel);
  std::string shown = root;
  // The walk is clean as far as it went: the first `depth` components are `owned`.
  auto clean = [&](size_t depth) {
    if (reach != nullptr) {
      reach->dir = std::move(owned);
      reach->depth = depth;
    }
    return true;
  };
  for (size_t i = 0; i < parts.size(); ++i) {
    shown = Join(shown, parts[i]);
    const bool last = i + 1 == parts.size();
    mode_t type;
    const bool listed = i == 0 && ListedType(listing, parts[i], &type);
    if (!last && !listed) {
      // A component on the way: opening it as a directory without following a symlink answers
      // "a directory" in one call; only a refusal needs the lstat that says why.
      Fd next(openat(fd, parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (next.ok()) {
        owned = std::move(next);
        fd = owned.get();
        continue;
      }
      if (errno == ENOENT) return clean(i);
      if (errno != ENOTDIR && errno != ELOOP) {
        error->Set(errno, "open", shown);
        return false;
      }
    }
    if (!listed) {
      struct stat st;
      if (fstatat(fd, parts[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return clean(i);
        error->Set(errno, "lstat", shown);
        return false;
      }
      type = st.st_mode & S_IFMT;
    }
    if (type == 0) return clean(i);  // not listed: not there
    if (S_ISLNK(type)) {
      *result = BeneathError::kSymlink;
      *bad = shown;
      return true;
    }
    if (last) return clean(i);
    if (!S_ISDIR(type)) {
      *result = BeneathError::kNotDir;
      *bad = shown;
      return true;
    }
    // Listed as a directory, or one swapped in since the open above refused it.
    Fd next(openat(fd, parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.ok()) {
      error->Set(errno, "open", shown);
      return false;
    }
    owned = std::move(next);
    fd = owned.get();
  }
  return clean(parts.size());
}

bool MakeBeneath(const std::string& root, const std::string& rel, unsigned mode, bool leaf_file,
                 std::vector<std::string>* created, SysError* error) {
  created->clear();
  Fd fd = OpenRoot(root, error);
  return fd.ok() && MakeBeneathAt(fd.get(), root, rel, mode, leaf_file, created, error, nullptr);
}

int OpenBeneathWalk(int dir, const std::string& rel) {
  Fd at(fcntl(dir, F_DUPFD_CLOEXEC, 0));
  if (!at.ok()) return -1;
  const std::vector<std::string> parts = Components(rel);
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == ".") continue;
    if (parts[i] == "..") {
      errno = EXDEV;
      return -1;
    }
    Fd next(openat(at.get(), parts[i].c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next.ok()) return -1;
    struct stat st;
    if (fstat(next.get(), &st) != 0) return -1;
    if (S_ISLNK(st.st_mode)) {
      errno = ELOOP;
      return -1;
    }
    if (i + 1 < parts.size() && !S_ISDIR(st.st_mode)) {
      errno = ENOTDIR;
      return -1;
    }
    at = std::move(next);
  }
  return at.release();
}

Fd OpenRoot(const std::string& root, SysError* error) {
  Fd fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.ok() || errno != ENOENT) {
    if (!fd.ok()) error->Set(errno, "open", root);
    return fd;
  }
  if (!MakeRoot(root, error)) return Fd();
  fd.reset(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.ok()) error->Set(errno, "open", root);
  return fd;
}

bool MakeBeneathAt(int root_fd, const std::string& root, const std::string& rel, unsigned mode,
                   bool leaf_file, std::vector<std::string>* created, SysError* error, Fd* leaf) {
  created->clear();
  Fd owned;  // the directory reached so far, once it is no longer the root
  int fd = root_fd;
  const std::vector<std::string> parts = Components(rel);
  std::string shown = root;
  for (size_t i = 0; i < parts.size(); ++i) {
    const char* name = parts[i].c_str();
    shown = Join(shown, parts[i]);
    const bool last = i + 1 == parts.size();
    if (last && leaf_file) {
      Fd f(openat(fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (f.ok()) {
        created->push_back(shown);
        if (leaf) *leaf = std::move(f);
        return true;
      }
      if (errno != EEXIST) {
        error->Set(errno, "open", shown);
        UndoCreated(created);
        return false;
      }
      struct stat st;
      if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        error->Set(errno, "lstat", shown);
        UndoCreated(created);
        return false;
      }
      if (!S_ISREG(st.st_mode)) {
        error->Set(S_ISLNK(st.st_mode) ? ELOOP : EEXIST, "open", shown);
        UndoCreated(created);
        return false;
      }
      if (leaf) {
        leaf->reset(openat(fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (!leaf->ok()) {
          error->Set(errno, "open", shown);
          UndoCreated(created);
          return false;
        }
      }
      return true;
    }
    CrashPoint();
    if (mkdirat(fd, name, static_cast<mode_t>(mode)) == 0) {
      created->push_back(shown);
    } else if (errno != EEXIST) {
      error->Set(errno, "mkdir", shown);
      UndoCreated(created);
      return false;
    }
    Fd next(openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.ok()) {
      int err = errno;
      // O_DIRECTORY|O_NOFOLLOW on a symlink says ENOTDIR; say what it really is.
      struct stat st;
      if (err == ENOTDIR && fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        err = ELOOP;
      error->Set(err, "open", shown);
      UndoCreated(created);
      return false;
    }
    owned = std::move(next);
    fd = owned.get();
  }
  if (leaf) {
    // The last directory reached, component by component without following a symlink: the
    // mount target, handed over so nothing resolves the path again.
    if (!owned.ok()) owned.reset(dup(root_fd));
    *leaf = std::move(owned);
  }
  return true;
}

}  // namespace kata
