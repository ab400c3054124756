#include "busroot.h"

#include <vector>

namespace kata {
namespace {

const char kHex[] = "0123456789abcdef";

std::string HexByte(int v) { return std::string{kHex[(v >> 4) & 0xf], kHex[v & 0xf]}; }

bool StartsWith(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}
bool EndsWith(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

}  // namespace

bool LocatePciRootBus(const std::string& sysfs, int rc, std::string* devpath, DeviceError* err) {
  const std::string name = "pci0000:" + HexByte(rc);
  const std::string acpi = "/devices/" + name;
  bool exists = false;
  if (!PathExists(sysfs + acpi, &exists, err)) return false;
  if (exists) {
    *devpath = acpi;
    return true;
  }

  // The kernel's own link from the bus class to the bus, wherever its bridge sits:
  // <root>/devices/.../pci0000:RC/pci_bus/0000:RC.
  std::string real, root;
  bool missing = false;
  if (!ResolvePath(sysfs + "/class/pci_bus/0000:" + HexByte(rc), &real, &missing, err))
    return false;
  if (!missing && ResolvePath(sysfs.empty() ? "/" : sysfs, &root, &missing, err) && !missing) {
    std::string rel =
        root == "/" ? real : (StartsWith(real, root + "/") ? real.substr(root.size()) : "");
    const std::string bus_tail = "/pci_bus/0000:" + HexByte(rc);
    if (StartsWith(rel, "/devices/") && EndsWith(rel, bus_tail)) {
      rel.resize(rel.size() - bus_tail.size());
      if (EndsWith(rel, "/" + name)) {
        *devpath = rel;
        return true;
      }
    }
  }
  if (*err) return false;

  // Device tree: the host bridge is a platform device and the root bus its child.
  std::vector<std::string> platform;
  if (!ListDir(sysfs + "/devices/platform", &platform, &missing, err)) return false;
  std::string found;
  for (const std::string& dev : platform) {
    std::string candidate = "/devices/platform/" + dev + "/" + name;
    if (!PathExists(sysfs + candidate, &exists, err)) return false;
    if (!exists) continue;
    if (!found.empty()) {
      err->Set(
          "ERR_SYSFS", sysfs + "/devices/platform",
          "two platform devices hold PCI root bus " + name + " (" + found + ", " + candidate + ")");
      return false;
    }
    found = candidate;
  }
  *devpath = found.empty() ? acpi : found;
  return true;
}

}  // namespace kata
