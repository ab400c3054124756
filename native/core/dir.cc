#include "dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

namespace kata {

std::string Join(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
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

}  // namespace kata
