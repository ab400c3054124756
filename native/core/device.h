// Which block device belongs to a disk the runtime announced, on each bus. One matcher object
// per bus answers both questions the same way: "is it in sysfs now?" and "is this uevent it?"
// (the cache and live events alike). Matching is exact: whole components, the disk never a
// partition, never a substring.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "syserror.h"
#include "sysfs.h"
#include "uevent.h"

namespace kata {

enum class Bus : int { kPci = 0, kCcw = 1, kScsi = 2, kMmio = 3, kPmem = 4 };

// s390x bus id "0.<ssid 0-3>.<devno: 1-4 hex digits>"; the guest always sees css 0.
struct CcwDevice {
  uint8_t cssid = 0;
  uint8_t ssid = 0;
  uint16_t devno = 0;
  std::string BusId() const;  // canonical "0.0.0005", as sysfs names it
};
bool ParseCcwDevice(std::string_view text, CcwDevice* out);

// "target:lun", decimal, as Kata's runtime sends it; the channel is always 0.
struct ScsiAddress {
  uint32_t target = 0;
  uint32_t lun = 0;
};
bool ParseScsiAddress(std::string_view text, ScsiAddress* out);

class DeviceMatcher : public UeventMatcher {
 public:
  // An add/change of a whole disk (subsystem block, not a partition, with a node name) whose
  // devpath is exactly this device's.
  bool Matches(const Uevent& ev) const override;
  // The disk in sysfs now: true with its node name, false (no error) when it is not there.
  virtual bool Find(std::string* name, DeviceError* err) const = 0;
  // Makes the kernel look for the device before waiting (PCI rescan, SCSI scan). May block.
  // A target that refuses (one host's scan, the bus rescan) does not stop the others or the
  // wait: it is recorded in Failures().
  virtual void Prepare(bool rescan) const;
  // What went wrong with single targets along the way without stopping the search (a host that
  // refused its scan, one device entry that could not be read): reported if the device never
  // appears. Each failure is a DeviceError naming the sysfs path.
  const std::vector<DeviceError>& Failures() const { return failures_; }
  // What is awaited, for timeout messages.
  virtual std::string Describe() const = 0;
  // A devpath close to the awaited one, to rank the events seen by similarity.
  virtual std::string Anchor() const = 0;

 protected:
  virtual bool MatchesPath(std::string_view devpath) const = 0;
  void NoteFailure(const DeviceError& e) const;

 private:
  // Written only by the thread that owns the matcher (Find/Prepare), never by uevent matching.
  mutable std::vector<DeviceError> failures_;
};

// Parses `spec` for `bus` (a PCI path, CCW bus id, SCSI address, or node name for MMIO/pmem) and
// builds its matcher; PCI walks the bridges now. Null with `err` set on bad input or sysfs.
std::unique_ptr<DeviceMatcher> MakeDeviceMatcher(Bus bus, const std::string& spec,
                                                 const std::string& root_complex,
                                                 const std::string& sysfs_root, DeviceError* err);

// False only when opening the node fails with ENXIO: the disk is in sysfs (and devtmpfs made
// its node) but the kernel has not finished adding it; its "add" uevent comes once it has. Seen
// on a real guest when a SCSI scan we asked for raced the hot-plug's own scan. Any other outcome
// (opened, no node, no permission) leaves the verdict to the mount, as before.
bool BlockNodeLive(const std::string& node);

// The node a disk named `name` (sysfs/uevent DEVNAME) has under the /dev tree `dev_root`.
std::string DeviceNodePath(const std::string& dev_root, const std::string& name);

enum class NodeType { kBlock, kChar, kOther };
// stat(2) of a device node: its type and number.
bool StatNode(const char* path, NodeType* type, unsigned* major, unsigned* minor, SysError* err);

// Score of how close `devpath` is to `anchor` (longest common prefix or suffix).
size_t Similarity(std::string_view devpath, std::string_view anchor);

}  // namespace kata
