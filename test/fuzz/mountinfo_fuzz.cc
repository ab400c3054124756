// /proc/self/mountinfo text, whose paths and sources any mount's name can fill: parsed line by
// line, never past a line; an entry comes from one line of at least five fields, and carries a
// type and source only when that line has the "-" separator before them.
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz.h"
#include "mountinfo.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<kata::MountinfoEntry> entries;
  kata::ParseMountinfo(text, &entries);
  const size_t lines = 1 + static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  Require(entries.size() <= lines);
  for (const kata::MountinfoEntry& e : entries) {
    // Unescaping only shortens a field.
    Require(e.mount_point.size() <= size && e.source.size() <= size && e.fstype.size() <= size);
    Require(e.fstype.empty() || text.find(" - ") != std::string_view::npos);
    Require(e.fstype.find(' ') == std::string::npos && e.fstype.find('\n') == std::string::npos);
  }
  return 0;
}
