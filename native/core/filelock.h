// An advisory lock on an open file (flock(2) LOCK_EX | LOCK_NB): held until its descriptor is
// closed, by the kernel on the holder's death too, so a lock left by a killed process never
// blocks the process restarted after it.
#pragma once

#include "syserror.h"

namespace kata {

// True when this descriptor now holds the file's lock; false with `held_elsewhere` when another
// open of the file (this process's or another's) holds it; false with `error` otherwise.
bool TryLockFile(int fd, bool* held_elsewhere, SysError* error);

}  // namespace kata
