// The PCI bridge walk over generated sysfs trees. The input describes a tree (one entry per
// line: 'd' directory, 'f' file, 'l' symlink "name>target") under a scratch root, then the
// PCI path to walk on its last line. Whatever the tree (loops, files for directories, many
// buses, junk names), the walk must end with a path under the root or an ERR_SYSFS-style error.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz.h"
#include "pci.h"
#include "sysfs.h"

namespace {

void RemoveTree(const std::string& path) {
  // Small trees only (bounded below); nftw would follow nothing either, but this keeps it plain.
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    std::vector<std::string> names;
    bool missing = false;
    kata::DeviceError err;
    if (kata::ListDir(path, &names, &missing, &err)) {
      for (const std::string& n : names) RemoveTree(path + "/" + n);
    }
    rmdir(path.c_str());
  } else {
    unlink(path.c_str());
  }
}

const std::string& Root() {
  static const std::string root = [] {
    // tmpfs when there is one: the tree is rebuilt for every input.
    char tmpl[] = "/dev/shm/kata-sysfs-fuzz-XXXXXX";
    if (access("/dev/shm", W_OK) != 0)
      std::memcpy(tmpl, "/tmp/kata-sysfs-fuzz-XXXXXX", sizeof("/tmp/kata-sysfs-fuzz-XXXXXX"));
    const char* d = mkdtemp(tmpl);
    if (d == nullptr) std::abort();
    std::atexit([] { RemoveTree(Root()); });
    return std::string(d);
  }();
  return root;
}

// Keeps generated names inside the scratch root: no "..", no absolute paths, bounded.
bool SafeRelative(std::string_view p) {
  if (p.empty() || p.size() > 200 || p[0] == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string_view::npos) end = p.size();
    const std::string_view part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (part.find('\0') != std::string_view::npos) return false;
    start = end + 1;
  }
  return true;
}

void MakeParents(const std::string& base, std::string_view rel) {
  size_t pos = 0;
  while ((pos = rel.find('/', pos)) != std::string_view::npos) {
    mkdir((base + "/" + std::string(rel.substr(0, pos))).c_str(), 0755);
    ++pos;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start <= input.size() && lines.size() < 65) {
    size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    lines.push_back(input.substr(start, end - start));
    start = end + 1;
  }
  if (lines.size() < 2) return 0;

  const std::string& root = Root();
  RemoveTree(root + "/devices");
  const std::string base = root + "/devices";
  mkdir(base.c_str(), 0755);
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (line.size() < 2) continue;
    const char kind = line[0];
    std::string_view rest = line.substr(1);
    std::string_view target;
    if (kind == 'l') {
      const size_t gt = rest.find('>');
      if (gt == std::string_view::npos) continue;
      target = rest.substr(gt + 1);
      rest = rest.substr(0, gt);
      if (target.find('\0') != std::string_view::npos) continue;
    }
    if (!SafeRelative(rest)) continue;
    MakeParents(base, rest);
    const std::string path = base + "/" + std::string(rest);
    if (kind == 'd') {
      mkdir(path.c_str(), 0755);
    } else if (kind == 'f') {
      const int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd >= 0) close(fd);
    } else if (kind == 'l') {
      // Relative targets only, so a link can loop inside the tree but never leave it.
      if (!target.empty() && target[0] != '/') {
        if (symlink(std::string(target).c_str(), path.c_str()) != 0) {
        }
      }
    }
  }

  kata::PciPath path;
  if (!kata::ParsePciPath(lines.back(), &path)) return 0;
  std::string out;
  kata::DeviceError err;
  if (kata::PciPathToSysfs(root, path, 0, &out, &err)) {
    Require(out.rfind(root + "/devices/pci0000:", 0) == 0);
    Require(out.size() < 4096);
  } else {
    Require(err.code != nullptr && std::string(err.code).rfind("ERR_", 0) == 0);
  }
  return 0;
}
