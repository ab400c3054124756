#include "hugepages.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "dir.h"
#include "fd.h"

namespace kata {
namespace {

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

}  // namespace kata
