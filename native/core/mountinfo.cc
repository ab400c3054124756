#include "mountinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

namespace kata {

std::string UnescapeMountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        const char c = s[i + k];
        if (c < '0' || c > '7') octal = false;
        v = v * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

bool ReadMountinfo(std::vector<MountinfoEntry>* out, SysError* error) {
  out->clear();
  const int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error->Set(errno, "open", "/proc/self/mountinfo");
    return false;
  }
  std::string table;
  char buf[16384];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error->Set(errno, "read", "/proc/self/mountinfo");
      close(fd);
      return false;
    }
    if (n == 0) break;
    table.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  ParseMountinfo(table, out);
  return true;
}

void ParseMountinfo(std::string_view table, std::vector<MountinfoEntry>* out) {
  out->clear();
  // id parent major:minor root mount-point options [optional...] - fstype source super-options
  for (size_t line = 0; line < table.size();) {
    size_t end = table.find('\n', line);
    if (end == std::string_view::npos) end = table.size();
    const std::string_view text = table.substr(line, end - line);
    line = end + 1;
    std::vector<std::string_view> fields;
    for (size_t at = 0; at <= text.size();) {
      size_t sp = text.find(' ', at);
      if (sp == std::string_view::npos) sp = text.size();
      fields.push_back(text.substr(at, sp - at));
      at = sp + 1;
    }
    if (fields.size() < 5) continue;
    MountinfoEntry e;
    e.id = std::strtol(std::string(fields[0]).c_str(), nullptr, 10);
    e.parent = std::strtol(std::string(fields[1]).c_str(), nullptr, 10);
    e.mount_point = UnescapeMountinfo(fields[4]);
    for (size_t j = 6; j + 2 < fields.size(); ++j) {
      if (fields[j] != "-") continue;
      e.fstype = std::string(fields[j + 1]);
      e.source = UnescapeMountinfo(fields[j + 2]);
      break;
    }
    out->push_back(std::move(e));
  }
}

}  // namespace kata
