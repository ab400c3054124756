// Reading sysfs without trusting it: every read is bounded (entries, path length), symlinks are
// followed only where sysfs itself uses them, and a broken or hostile tree (loops, files where
// directories belong, runaway listings) becomes an ERR_SYSFS error rather than a hang or a crash.
#pragma once

#include <string>
#include <vector>

#include "syserror.h"

namespace kata {

// More than this many entries in one sysfs directory is treated as a broken tree.
constexpr size_t kMaxSysfsEntries = 4096;

// Lists the names in `dir` (without . and ..), sorted. A missing directory sets *missing and is
// not an error; everything else that goes wrong is ERR_SYSFS.
bool ListDir(const std::string& dir, std::vector<std::string>* names, bool* missing,
             DeviceError* err);

// lstat(2): true when `path` exists (a dangling symlink exists); ENOENT/ENOTDIR are "no".
bool PathExists(const std::string& path, bool* exists, DeviceError* err);

// realpath(3) of `path`; a missing target sets *missing. Symlink loops are ERR_SYSFS.
bool ResolvePath(const std::string& path, std::string* real, bool* missing, DeviceError* err);

// Writes `text` to a sysfs attribute (rescan/scan triggers). These writes can block while the
// kernel probes, so callers run them on a pool thread.
bool WriteAttribute(const std::string& path, const std::string& text, DeviceError* err);

// `root` without trailing slashes, "" for "/": the prefix every sysfs path is built on.
std::string SysfsPrefix(const std::string& root);

}  // namespace kata
