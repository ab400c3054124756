// Directory helpers shared by the tree walks (tree.cc, fsgroup.cc, beneath.cc).
#pragma once

#include <string>
#include <vector>

#include "syserror.h"

namespace kata {

// `dir` + "/" + `name`.
std::string Join(const std::string& dir, const std::string& name);

// Entry names of an open directory (the fd is duplicated; the caller keeps its own). `shown` is
// the path named in an error.
bool ListDir(int dirfd, std::vector<std::string>* names, SysError* error, const std::string& shown);

}  // namespace kata
