// PCI paths as the Kata runtime sends them ("02/03": slot 2 of the root bus, then slot 3 behind
// that bridge) and their translation to a sysfs directory by walking each bridge's bus.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sysfs.h"

namespace kata {

struct PciSlot {
  uint8_t slot = 0;  // 0x00-0x1f
  uint8_t fn = 0;    // 0-7
};

struct PciPath {
  int root_complex = -1;  // a pxb root complex named by the path (NUMA form), else -1
  std::vector<PciSlot> slots;
};

// A chain of bridges cannot be deeper than the 256 bus numbers of a domain.
constexpr size_t kMaxPciPathDepth = 256;

// "SS" or "SS.F" (hex, 1-2 slot digits, one function digit) joined by '/'. A first element
// 0x20-0xff followed by more elements names a pxb root complex ("20/00/02").
bool ParsePciPath(std::string_view text, PciPath* out);

// One or two hex digits ("00", "20"); "" means the default root complex 00.
bool ParseRootComplex(std::string_view text, int* out);

// The absolute sysfs directory of the device at `path`, starting at the root bus pci0000:<rc>
// wherever this guest has it (LocatePciRootBus: /devices/pci0000:<rc> under ACPI,
// /devices/platform/<host bridge>/pci0000:<rc> under a device tree). Each bridge's bus comes from
// its pci_bus/ entry (exactly one) or, when it has none, from its child devices (exactly one bus
// among them). Bridges must exist; the final device need not. `root_complex` applies when the path
// does not name one.
bool PciPathToSysfs(const std::string& sysfs_root, const PciPath& path, int root_complex,
                    std::string* out, DeviceError* err);

// "0000:01" as found under pci_bus/ (domain of 4-8 hex digits, bus of 2).
bool IsPciBusName(std::string_view name);
// "0000:01:03.0": a PCI device's directory name; `bus_len` gets the length of its bus part.
bool IsPciDeviceName(std::string_view name, size_t* bus_len);

}  // namespace kata
