// Filesystem work a storage layer must do without trusting path strings: creating mount points
// beneath an allowed root without following symlinks, removing what it created without ever
// deleting into a mount below it, Kata's fsGroup ownership change, and hugetlbfs page allocation.
#pragma once

#include <string>
#include <vector>

#include "syserror.h"

namespace kata {

enum class BeneathError {
  kNone = 0,
  kSymlink,  // a component (or the leaf) is a symlink: the path could be redirected
  kNotDir,   // a component on the way is not a directory
};

// Walks `rel` (relative, normalized, no "." or "..") from the already existing directory `root`,
// one component at a time with O_NOFOLLOW, and stops at the first component that does not exist.
// Nothing is created. `bad` receives the offending path on a kSymlink/kNotDir result. A system
// error other than ENOENT is reported through `error` (return value false).
bool CheckBeneath(const std::string& root, const std::string& rel, BeneathError* result,
                  std::string* bad, SysError* error);

// Creates `root` if missing (it is trusted configuration), then every missing component of `rel`
// beneath it with mkdirat, opening each with O_NOFOLLOW|O_DIRECTORY so a symlink swapped in
// between check and creation is refused (ELOOP/ENOTDIR). With `leaf_file` the last component is
// created as an empty regular file (a bind target for a device node). `created` receives, in
// creation order, the absolute paths this call created; on failure they are removed again.
bool MakeBeneath(const std::string& root, const std::string& rel, unsigned mode, bool leaf_file,
                 std::vector<std::string>* created, SysError* error);

// Removes the directory tree at `path` (not following symlinks). It first scans the whole tree
// and refuses, with EBUSY and nothing deleted, if `path` or anything below it is a mount point.
bool RemoveTree(const std::string& path, SysError* error);

// Removes one entry the sandbox created: rmdir, or unlink when it is not a directory (a bind
// target file). Runs on the core's threads: under a storm of umounts, rmdir waits for the
// kernel's mount locks, which must not stall the JS thread.
bool RemoveEntry(const std::string& path, SysError* error);

struct FsGroupResult {
  bool skipped = false;  // OnRootMismatch: root already had the group and the bits
  long changed = 0;      // inodes whose group/mode were set
};

// Kata's fsGroup: recursively chgrp to `gid` and add rw (or r when read-only) for user and group,
// x for directories, setgid on directories; symlinks are skipped, never followed. With
// `on_root_mismatch`, nothing is done when the root already has the gid, the bits and setgid.
bool ApplyFsGroup(const std::string& path, unsigned gid, bool read_only, bool on_root_mismatch,
                  FsGroupResult* result, SysError* error);

// Makes sure at least `pages` huge pages of `page_kb` KiB exist, through
// <sysfs_root>/kernel/mm/hugepages/hugepages-<page_kb>kB/nr_hugepages. The count is read back
// because the kernel may allocate fewer than asked; a short allocation is undone (the previous
// count written back) and reported through `*allocated` < `pages` with a true return.
bool EnsureHugepages(const std::string& sysfs_root, unsigned long page_kb, unsigned long pages,
                     unsigned long* previous, unsigned long* allocated, SysError* error);

}  // namespace kata
