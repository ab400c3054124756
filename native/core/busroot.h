// Where each bus's root lives in sysfs. It depends on the architecture and the firmware: a PCI
// root bus is /devices/pci0000:00 under ACPI (x86-64 q35, arm64 with UEFI/ACPI) but a child of
// the host bridge's platform device under a device tree (arm64 `virt`:
// /devices/platform/4010000000.pcie/pci0000:00). Every lookup and every uevent devpath match
// starts from what these functions find rather than from a path assumed at compile time.
#pragma once

#include <string>

#include "sysfs.h"

namespace kata {

// The devpath (relative to the sysfs root, "/devices/...") of PCI root bus pci0000:<rc>, found
// as Kata's agent does (create_pci_root_bus_path): the ACPI location /devices/pci0000:<rc> when
// it exists; else where /class/pci_bus/0000:<rc> leads; else the one platform device holding
// pci0000:<rc> (/devices/platform/<dev>/pci0000:<rc>). When none exists, the ACPI location (so a
// missing bus reads as "not found" there). Two platform devices holding it is ERR_SYSFS.
bool LocatePciRootBus(const std::string& sysfs, int rc, std::string* devpath, DeviceError* err);

// The channel subsystem of s390x CCW devices: a Linux guest has exactly one, css0, at the top
// of the device tree (Kata's CCW_ROOT_BUS_PATH). Subchannels and their devices sit below it.
inline constexpr char kCcwRootDevpath[] = "/devices/css0";

}  // namespace kata
