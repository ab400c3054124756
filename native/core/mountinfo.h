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
  std::string fstype;       // after the optional fields' "-" separator; empty when it is missing
  std::string source;       // unescaped
};

// Reads the whole table. False with `error` set when /proc cannot be read.
bool ReadMountinfo(std::vector<MountinfoEntry>* out, SysError* error);

// The entries of a mountinfo text, one per line with at least its five leading fields; a line
// cut short or malformed is skipped, never read past.
void ParseMountinfo(std::string_view table, std::vector<MountinfoEntry>* out);

// mountinfo escapes space, tab, newline and backslash as \ooo; anything else passes through.
std::string UnescapeMountinfo(std::string_view field);

}  // namespace kata
