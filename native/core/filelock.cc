#include "filelock.h"

#include <errno.h>
#include <sys/file.h>

namespace kata {

bool TryLockFile(int fd, bool* held_elsewhere, SysError* error) {
  *held_elsewhere = false;
  int r;
  do {
    r = flock(fd, LOCK_EX | LOCK_NB);
  } while (r != 0 && errno == EINTR);
  if (r == 0) return true;
  if (errno == EWOULDBLOCK) {
    *held_elsewhere = true;
    return false;
  }
  error->Set(errno, "flock");
  return false;
}

}  // namespace kata
