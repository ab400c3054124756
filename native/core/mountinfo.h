// /proc/self/mountinfo: the kernel's list of this mount namespace's mounts, the one place that
// names every mount by its path (proc(5)).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "syserror.h"

namespace kata {

struct MountinfoEntry {
  long id = -1;
  long parent = -1;
  std::string mount_point;  // unescaped
};

// Reads the whole table. False with `error` set when /proc cannot be read.
bool ReadMountinfo(std::vector<MountinfoEntry>* out, SysError* error);

// mountinfo escapes space, tab, newline and backslash as \ooo; anything else passes through.
std::string UnescapeMountinfo(std::string_view field);

}  // namespace kata
