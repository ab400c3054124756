// Removing what the sandbox created without ever deleting into a mount: a whole tree is checked
// for mounts (directories and files, at any depth) before anything in it is deleted.
#pragma once

#include <string>

#include "syserror.h"

namespace kata {

// Removes the directory tree at `path` (not following symlinks). It first scans the whole tree
// and refuses, with EBUSY and nothing deleted, if `path` or anything below it is a mount point.
bool RemoveTree(const std::string& path, SysError* error);

// Removes one entry the sandbox created: rmdir, or unlink when it is not a directory (a bind
// target file). Runs on the core's threads: under a storm of umounts, rmdir waits for the
// kernel's mount locks, which must not stall the JS thread.
bool RemoveEntry(const std::string& path, SysError* error);

}  // namespace kata
