#include "pci.h"

#include <cerrno>

#include "busroot.h"
#include "hex.h"

namespace kata {
namespace {

// 1 or 2 hex digits, nothing else (no sign, no 0x, no spaces).
bool ParseHexByte(std::string_view s, int* out) {
  if (s.empty() || s.size() > 2) return false;
  int v = 0;
  for (char c : s) {
    int d = HexDigit(c);
    if (d < 0) return false;
    v = v * 16 + d;
  }
  *out = v;
  return true;
}

bool AllHex(std::string_view s) {
  for (char c : s) {
    if (HexDigit(c) < 0) return false;
  }
  return true;
}

const char kHex[] = "0123456789abcdef";

void AppendHexByte(std::string* s, int v) {
  s->push_back(kHex[(v >> 4) & 0xf]);
  s->push_back(kHex[v & 0xf]);
}

}  // namespace

bool ParseRootComplex(std::string_view text, int* out) {
  if (text.empty()) {
    *out = 0;
    return true;
  }
  return ParseHexByte(text, out);
}

bool ParsePciPath(std::string_view text, PciPath* out) {
  out->root_complex = -1;
  out->slots.clear();
  if (text.empty()) return false;
  size_t start = 0;
  bool first = true;
  for (;;) {
    size_t slash = text.find('/', start);
    std::string_view elem = text.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    size_t dot = elem.find('.');
    std::string_view slot_text = elem.substr(0, dot);
    int slot = 0;
    int fn = 0;
    if (!ParseHexByte(slot_text, &slot)) return false;
    if (dot != std::string_view::npos) {
      std::string_view fn_text = elem.substr(dot + 1);
      if (fn_text.size() != 1 || !ParseHexByte(fn_text, &fn) || fn > 7) return false;
    }
    bool last = slash == std::string_view::npos;
    if (slot > 0x1f) {
      // Only a bare leading element may name a root complex, and something must follow it.
      if (!first || last || dot != std::string_view::npos) return false;
      out->root_complex = slot;
    } else {
      if (out->slots.size() == kMaxPciPathDepth) return false;
      out->slots.push_back(PciSlot{static_cast<uint8_t>(slot), static_cast<uint8_t>(fn)});
    }
    first = false;
    if (last) break;
    start = slash + 1;
  }
  return !out->slots.empty();
}

bool IsPciBusName(std::string_view name) {
  size_t colon = name.find(':');
  if (colon == std::string_view::npos || colon < 4 || colon > 8) return false;
  std::string_view bus = name.substr(colon + 1);
  return AllHex(name.substr(0, colon)) && bus.size() == 2 && AllHex(bus);
}

bool IsPciDeviceName(std::string_view name, size_t* bus_len) {
  size_t colon = name.rfind(':');
  if (colon == std::string_view::npos || !IsPciBusName(name.substr(0, colon))) return false;
  std::string_view sf = name.substr(colon + 1);
  if (sf.size() != 4 || sf[2] != '.' || !AllHex(sf.substr(0, 2)) || sf[3] < '0' || sf[3] > '7')
    return false;
  *bus_len = colon;
  return true;
}

bool PciPathToSysfs(const std::string& sysfs_root, const PciPath& path, int root_complex,
                    std::string* out, DeviceError* err) {
  int rc = path.root_complex >= 0 ? path.root_complex : root_complex;
  const std::string sysfs = SysfsPrefix(sysfs_root);
  std::string root_bus;
  if (!LocatePciRootBus(sysfs, rc, &root_bus, err)) return false;
  std::string dir = sysfs + root_bus;
  std::string bus = "0000:";
  AppendHexByte(&bus, rc);
  std::vector<std::string> names;
  for (size_t i = 0; i < path.slots.size(); ++i) {
    dir += '/';
    dir += bus;
    dir += ':';
    AppendHexByte(&dir, path.slots[i].slot);
    dir += '.';
    dir += kHex[path.slots[i].fn];
    if (i + 1 == path.slots.size()) break;

    // A bridge: find the one bus behind it.
    bool missing = false;
    if (!ListDir(dir + "/pci_bus", &names, &missing, err)) return false;
    if (!missing) {
      if (names.size() != 1) {
        err->Set("ERR_SYSFS", dir + "/pci_bus",
                 "expected exactly one PCI bus behind the bridge, found " +
                     std::to_string(names.size()));
        return false;
      }
      if (!IsPciBusName(names[0])) {
        err->Set("ERR_SYSFS", dir + "/pci_bus/" + names[0].substr(0, 64), "not a PCI bus name");
        return false;
      }
      bus = names[0];
      continue;
    }
    // No pci_bus/ (some kernels and fixture trees): the bus its child devices sit on.
    if (!ListDir(dir, &names, &missing, err)) return false;
    if (missing) {
      err->Set("ERR_SYSFS", dir, "PCI bridge not found", ENOENT, "opendir");
      return false;
    }
    std::string child_bus;
    for (const std::string& n : names) {
      size_t bus_len = 0;
      if (!IsPciDeviceName(n, &bus_len)) continue;
      std::string b = n.substr(0, bus_len);
      if (child_bus.empty()) {
        child_bus = b;
      } else if (b != child_bus) {
        err->Set("ERR_SYSFS", dir,
                 "devices of two PCI buses (" + child_bus + ", " + b + ") behind one bridge");
        return false;
      }
    }
    if (child_bus.empty()) {
      err->Set("ERR_SYSFS", dir,
               "no PCI bus behind the bridge (neither pci_bus/ nor child devices)");
      return false;
    }
    bus = child_bus;
  }
  if (dir.size() >= 4096) {
    err->Set("ERR_SYSFS", dir.substr(0, 256) + "...", "sysfs path longer than PATH_MAX",
             ENAMETOOLONG);
    return false;
  }
  *out = std::move(dir);
  return true;
}

}  // namespace kata
