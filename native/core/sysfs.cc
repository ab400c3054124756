#include "sysfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace kata {
namespace {

const char kSysfs[] = "ERR_SYSFS";

bool TooLong(const std::string& path, DeviceError* err) {
  if (path.size() < PATH_MAX) return false;
  err->Set(kSysfs, path.substr(0, 256) + "...", "sysfs path longer than PATH_MAX", ENAMETOOLONG);
  return true;
}

std::string Describe(int e) { return strerror(e); }

}  // namespace

std::string SysfsPrefix(const std::string& root) {
  size_t end = root.size();
  while (end > 0 && root[end - 1] == '/') --end;
  return root.substr(0, end);
}

bool ListDir(const std::string& dir, std::vector<std::string>* names, bool* missing,
             DeviceError* err) {
  names->clear();
  *missing = false;
  if (TooLong(dir, err)) return false;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) {
      *missing = true;
      return true;
    }
    int e = errno;
    err->Set(kSysfs, dir, "cannot list sysfs directory: " + Describe(e), e, "opendir");
    return false;
  }
  bool ok = true;
  for (;;) {
    errno = 0;
    struct dirent* ent = readdir(d);
    if (ent == nullptr) {
      if (errno != 0) {
        int e = errno;
        err->Set(kSysfs, dir, "cannot list sysfs directory: " + Describe(e), e, "readdir");
        ok = false;
      }
      break;
    }
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
    if (names->size() == kMaxSysfsEntries) {
      err->Set(kSysfs, dir,
               "more than " + std::to_string(kMaxSysfsEntries) + " entries in a sysfs directory");
      ok = false;
      break;
    }
    names->emplace_back(ent->d_name);
  }
  closedir(d);
  if (!ok) names->clear();
  std::sort(names->begin(), names->end());
  return ok;
}

bool PathExists(const std::string& path, bool* exists, DeviceError* err) {
  *exists = false;
  if (TooLong(path, err)) return false;
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    *exists = true;
    return true;
  }
  if (errno == ENOENT || errno == ENOTDIR) return true;
  int e = errno;
  err->Set(kSysfs, path, "cannot look up sysfs entry: " + Describe(e), e, "lstat");
  return false;
}

bool ResolvePath(const std::string& path, std::string* real, bool* missing, DeviceError* err) {
  *missing = false;
  if (TooLong(path, err)) return false;
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) {
    if (errno == ENOENT) {
      *missing = true;
      return true;
    }
    int e = errno;
    err->Set(kSysfs, path, "cannot resolve sysfs link: " + Describe(e), e, "realpath");
    return false;
  }
  *real = buf;
  return true;
}

bool WriteAttribute(const std::string& path, const std::string& text, DeviceError* err) {
  if (TooLong(path, err)) return false;
  // O_NOFOLLOW: attributes are regular files; a link here would send our write elsewhere.
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    int e = errno;
    err->Set(kSysfs, path, "cannot open sysfs attribute: " + Describe(e), e, "open");
    return false;
  }
  ssize_t n;
  do {
    n = write(fd, text.data(), text.size());
  } while (n < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    err->Set(kSysfs, path, "cannot write sysfs attribute: " + Describe(n < 0 ? e : EIO),
             n < 0 ? e : EIO, "write");
    return false;
  }
  return true;
}

}  // namespace kata
