#include "device.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "busroot.h"
#include "hex.h"
#include "pci.h"

namespace kata {
namespace {

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Decimal digits only (no sign, spaces or 0x), at most UINT32_MAX.
bool ParseU32(std::string_view s, uint32_t* out) {
  if (!AllDigits(s) || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint64_t>(c - '0');
  if (v > UINT32_MAX) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

// The last `n` '/'-separated components of `path` (fewer when it has fewer).
bool LastComponents(std::string_view path, size_t n, std::string_view* parts) {
  size_t end = path.size();
  for (size_t i = 0; i < n; ++i) {
    if (end == 0) return false;
    size_t slash = path.rfind('/', end - 1);
    if (slash == std::string_view::npos) return false;
    parts[n - 1 - i] = path.substr(slash + 1, end - slash - 1);
    end = slash;
  }
  return true;
}

// "/block/<name>" at the very end of a devpath: the whole disk (a partition is <disk>/<part>).
bool EndsWithBlockName(std::string_view devpath, std::string_view name) {
  std::string_view parts[2];
  return LastComponents(devpath, 2, parts) && parts[0] == "block" && parts[1] == name;
}

// "/virtio<N>/block/<name>" exactly: what a virtio-blk disk looks like under its transport.
bool IsVirtioBlockTail(std::string_view rest) {
  if (!StartsWith(rest, "/virtio")) return false;
  rest.remove_prefix(7);
  size_t digits = 0;
  while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
  if (digits == 0) return false;
  rest.remove_prefix(digits);
  if (!StartsWith(rest, "/block/")) return false;
  rest.remove_prefix(7);
  return !rest.empty() && rest.find('/') == std::string_view::npos;
}

bool IsVirtioName(const std::string& n) {
  return n.size() > 6 && StartsWith(n, "virtio") && AllDigits(std::string_view(n).substr(6));
}

// The one disk under <dir>/block/; more than one means the tree is not what we think it is.
bool FindSingleDisk(const std::string& block_dir, std::string* name, bool* found,
                    DeviceError* err) {
  std::vector<std::string> disks;
  bool missing = false;
  *found = false;
  if (!ListDir(block_dir, &disks, &missing, err)) return false;
  if (missing || disks.empty()) return true;
  if (disks.size() > 1) {
    err->Set("ERR_SYSFS", block_dir, "expected one disk, found " + std::to_string(disks.size()));
    return false;
  }
  *name = disks[0];
  *found = true;
  return true;
}

// The disk of a virtio-blk device whose transport directory is `dir` (PCI function, CCW device).
bool FindVirtioDisk(const std::string& dir, std::string* name, DeviceError* err) {
  std::vector<std::string> names;
  bool missing = false;
  if (!ListDir(dir, &names, &missing, err)) return false;
  for (const std::string& n : names) {
    if (!IsVirtioName(n)) continue;
    bool found = false;
    if (!FindSingleDisk(dir + "/" + n + "/block", name, &found, err)) return false;
    if (found) return true;
  }
  return false;
}

bool IsSubchannel(std::string_view s) {
  return s.size() == 8 && HexDigit(s[0]) >= 0 && s[1] == '.' && HexDigit(s[2]) >= 0 &&
         s[3] == '.' && HexDigit(s[4]) >= 0 && HexDigit(s[5]) >= 0 && HexDigit(s[6]) >= 0 &&
         HexDigit(s[7]) >= 0;
}

class PciMatcher : public DeviceMatcher {
 public:
  PciMatcher(std::string text, std::string dir, std::string rel, std::string sysfs)
      : text_(std::move(text)),
        dir_(std::move(dir)),
        rel_(std::move(rel)),
        sysfs_(std::move(sysfs)) {}

  bool Find(std::string* name, DeviceError* err) const override {
    return FindVirtioDisk(dir_, name, err);
  }
  void Prepare(bool rescan) const override {
    DeviceError e;
    if (rescan && !WriteAttribute(sysfs_ + "/bus/pci/rescan", "1", &e)) NoteFailure(e);
  }
  std::string Describe() const override {
    return "virtio-blk disk at PCI path " + text_ + " (" + rel_ + ")";
  }
  std::string Anchor() const override { return rel_ + "/virtio"; }

 protected:
  bool MatchesPath(std::string_view devpath) const override {
    return StartsWith(devpath, rel_) && IsVirtioBlockTail(devpath.substr(rel_.size()));
  }

 private:
  std::string text_, dir_, rel_, sysfs_;
};

class CcwMatcher : public DeviceMatcher {
 public:
  CcwMatcher(std::string bus_id, std::string sysfs)
      : bus_id_(std::move(bus_id)), sysfs_(std::move(sysfs)) {}

  bool Find(std::string* name, DeviceError* err) const override {
    std::string link = sysfs_ + "/bus/ccw/devices/" + bus_id_;
    std::string real, root;
    bool missing = false;
    if (!ResolvePath(link, &real, &missing, err)) return false;
    if (missing) return false;
    if (!ResolvePath(sysfs_.empty() ? "/" : sysfs_, &root, &missing, err)) return false;
    std::string prefix = (root == "/" ? "" : root) + kCcwRootDevpath + "/";
    std::string_view rest(real);
    if (missing || !StartsWith(rest, prefix) || !IsSubchannel(rest.substr(prefix.size(), 8)) ||
        rest.substr(prefix.size() + 8) != "/" + bus_id_) {
      err->Set("ERR_SYSFS", link,
               std::string("CCW device is not under ") + kCcwRootDevpath + "/<subchannel>/");
      return false;
    }
    return FindVirtioDisk(real, name, err);
  }
  std::string Describe() const override { return "virtio-blk disk of CCW device " + bus_id_; }
  std::string Anchor() const override {
    return std::string(kCcwRootDevpath) + "/0.0.0000/" + bus_id_ + "/virtio";
  }

 protected:
  bool MatchesPath(std::string_view devpath) const override {
    const std::string css = std::string(kCcwRootDevpath) + "/";
    if (!StartsWith(devpath, css)) return false;
    devpath.remove_prefix(css.size());
    if (!IsSubchannel(devpath.substr(0, 8))) return false;
    devpath.remove_prefix(8);
    std::string dev = "/" + bus_id_;
    return StartsWith(devpath, dev) && IsVirtioBlockTail(devpath.substr(dev.size()));
  }

 private:
  std::string bus_id_, sysfs_;
};

class ScsiMatcher : public DeviceMatcher {
 public:
  ScsiMatcher(ScsiAddress addr, std::string text, std::string sysfs)
      : addr_(addr),
        text_(std::move(text)),
        sysfs_(std::move(sysfs)),
        suffix_(":0:" + std::to_string(addr.target) + ":" + std::to_string(addr.lun)) {}

  bool Find(std::string* name, DeviceError* err) const override {
    std::string dir = sysfs_ + "/bus/scsi/devices";
    std::vector<std::string> names;
    bool missing = false;
    if (!ListDir(dir, &names, &missing, err)) return false;
    // Our target:lun on every host: one entry that cannot be read must not hide the disk on
    // another host.
    for (const std::string& n : names) {
      if (!IsOurs(n)) continue;
      bool found = false;
      DeviceError e;
      if (!FindSingleDisk(dir + "/" + n + "/block", name, &found, &e)) {
        NoteFailure(e);
        continue;
      }
      if (found) return true;
    }
    return false;
  }
  void Prepare(bool) const override {
    std::string dir = sysfs_ + "/class/scsi_host";
    std::vector<std::string> hosts;
    bool missing = false;
    DeviceError e;
    if (!ListDir(dir, &hosts, &missing, &e)) {
      NoteFailure(e);
      return;
    }
    std::string request = "0 " + std::to_string(addr_.target) + " " + std::to_string(addr_.lun);
    for (const std::string& h : hosts) {
      DeviceError host_error;
      if (!WriteAttribute(dir + "/" + h + "/scan", request, &host_error)) NoteFailure(host_error);
    }
  }
  std::string Describe() const override {
    return "SCSI disk at target:lun " + text_ + " (<host>" + suffix_ + "/block/*)";
  }
  std::string Anchor() const override { return suffix_ + "/block/"; }

 protected:
  bool MatchesPath(std::string_view devpath) const override {
    std::string_view parts[3];
    return LastComponents(devpath, 3, parts) && IsOurs(parts[0]) && parts[1] == "block" &&
           !parts[2].empty();
  }

 private:
  // "<host>:0:<target>:<lun>" with a decimal host number and exactly our numbers.
  bool IsOurs(std::string_view n) const {
    size_t colon = n.find(':');
    return colon != std::string_view::npos && AllDigits(n.substr(0, colon)) &&
           n.substr(colon) == suffix_;
  }

  ScsiAddress addr_;
  std::string text_, sysfs_, suffix_;
};

// MMIO and pmem disks are known only by the node name the runtime predicted.
class NamedDiskMatcher : public DeviceMatcher {
 public:
  NamedDiskMatcher(std::string name, std::string sysfs, bool acpi_only)
      : name_(std::move(name)), sysfs_(std::move(sysfs)), acpi_only_(acpi_only) {}

  bool Find(std::string* name, DeviceError* err) const override {
    std::string link = sysfs_ + "/block/" + name_;
    if (!acpi_only_) {
      bool exists = false;
      if (!PathExists(link, &exists, err) || !exists) return false;
      *name = name_;
      return true;
    }
    std::string real, root;
    bool missing = false;
    if (!ResolvePath(link, &real, &missing, err) || missing) return false;
    if (!ResolvePath(sysfs_.empty() ? "/" : sysfs_, &root, &missing, err) || missing) return false;
    std::string_view rel(real);
    if (root != "/") {
      if (!StartsWith(rel, root + "/")) return false;
      rel.remove_prefix(root.size());
    }
    if (!MatchesPath(rel)) return false;
    *name = name_;
    return true;
  }
  std::string Describe() const override {
    return acpi_only_ ? "NVDIMM disk " + name_ + " (/devices/LNXSYSTM*/.../block/" + name_ + ")"
                      : "disk " + name_ + " (.../block/" + name_ + ")";
  }
  std::string Anchor() const override { return "/block/" + name_; }

 protected:
  bool MatchesPath(std::string_view devpath) const override {
    if (acpi_only_ && !StartsWith(devpath, "/devices/LNXSYSTM")) return false;
    return EndsWithBlockName(devpath, name_);
  }

 private:
  std::string name_, sysfs_;
  bool acpi_only_;
};

}  // namespace

std::string CcwDevice::BusId() const {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  s += kHex[cssid & 0xf];
  s += '.';
  s += kHex[ssid & 0xf];
  s += '.';
  for (int shift = 12; shift >= 0; shift -= 4) s += kHex[(devno >> shift) & 0xf];
  return s;
}

bool ParseCcwDevice(std::string_view text, CcwDevice* out) {
  // "0" "." ssid "." 1-4 hex digits: the only shape the guest's css0 ever shows.
  if (text.size() < 5 || text.size() > 8 || text[0] != '0' || text[1] != '.' || text[3] != '.')
    return false;
  if (text[2] < '0' || text[2] > '3') return false;
  std::string_view devno = text.substr(4);
  uint32_t v = 0;
  for (char c : devno) {
    int d = HexDigit(c);
    if (d < 0) return false;
    v = v * 16 + static_cast<uint32_t>(d);
  }
  out->cssid = 0;
  out->ssid = static_cast<uint8_t>(text[2] - '0');
  out->devno = static_cast<uint16_t>(v);
  return true;
}

bool ParseScsiAddress(std::string_view text, ScsiAddress* out) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  return ParseU32(text.substr(0, colon), &out->target) &&
         ParseU32(text.substr(colon + 1), &out->lun);
}

bool DeviceMatcher::Matches(const Uevent& ev) const {
  return (ev.action == "add" || ev.action == "change") && ev.subsystem == "block" &&
         ev.devtype != "partition" && !ev.devname.empty() && MatchesPath(ev.devpath);
}

void DeviceMatcher::Prepare(bool) const {}

void DeviceMatcher::NoteFailure(const DeviceError& e) const {
  // The same failure seen again by a later look is one failure.
  for (const DeviceError& f : failures_) {
    if (f.value == e.value && f.reason == e.reason) return;
  }
  if (failures_.size() < 64) failures_.push_back(e);
}

std::unique_ptr<DeviceMatcher> MakeDeviceMatcher(Bus bus, const std::string& spec,
                                                 const std::string& root_complex,
                                                 const std::string& sysfs_root, DeviceError* err) {
  std::string sysfs = SysfsPrefix(sysfs_root);
  switch (bus) {
    case Bus::kPci: {
      PciPath path;
      if (!ParsePciPath(spec, &path)) {
        err->Set("ERR_INVALID_PCI_PATH", spec,
                 "invalid PCI path (SS or SS.F hex elements joined by '/')");
        return nullptr;
      }
      int rc = 0;
      if (!ParseRootComplex(root_complex, &rc) ||
          (!root_complex.empty() && path.root_complex >= 0 && path.root_complex != rc)) {
        err->Set("ERR_INVALID_PCI_PATH", root_complex,
                 "invalid PCI root complex (1-2 hex digits, as in the path)");
        return nullptr;
      }
      std::string dir;
      if (!PciPathToSysfs(sysfs, path, rc, &dir, err)) return nullptr;
      std::string rel = dir.substr(sysfs.size());
      return std::make_unique<PciMatcher>(spec, dir, rel, sysfs);
    }
    case Bus::kCcw: {
      CcwDevice dev;
      if (!ParseCcwDevice(spec, &dev)) {
        err->Set("ERR_INVALID_CCW_DEVICE", spec,
                 "invalid CCW bus id (0.<ssid 0-3>.<devno, 1-4 hex digits>)");
        return nullptr;
      }
      return std::make_unique<CcwMatcher>(dev.BusId(), sysfs);
    }
    case Bus::kScsi: {
      ScsiAddress addr;
      if (!ParseScsiAddress(spec, &addr)) {
        err->Set("ERR_INVALID_SCSI_ADDRESS", spec, "invalid SCSI address (decimal target:lun)");
        return nullptr;
      }
      return std::make_unique<ScsiMatcher>(addr, spec, sysfs);
    }
    case Bus::kMmio:
    case Bus::kPmem:
      if (spec.empty() || spec == "." || spec == ".." || spec.find('/') != std::string::npos ||
          spec.find('\0') != std::string::npos || spec.size() > 255) {
        err->Set("ERR_INVALID_ARG_VALUE", spec, "invalid device node name");
        return nullptr;
      }
      return std::make_unique<NamedDiskMatcher>(spec, sysfs, bus == Bus::kPmem);
  }
  err->Set("ERR_INVALID_ARG_VALUE", std::to_string(static_cast<int>(bus)), "unknown bus");
  return nullptr;
}

std::string DeviceNodePath(const std::string& dev_root, const std::string& name) {
  return SysfsPrefix(dev_root) + "/" + name;
}

bool BlockNodeLive(const std::string& node) {
  int fd = open(node.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return true;
  }
  return errno != ENXIO;
}

bool StatNode(const char* path, NodeType* type, unsigned* major_out, unsigned* minor_out,
              SysError* err) {
  struct stat st;
  if (stat(path, &st) != 0) {
    err->Set(errno, "stat", path);
    return false;
  }
  *type = S_ISBLK(st.st_mode)   ? NodeType::kBlock
          : S_ISCHR(st.st_mode) ? NodeType::kChar
                                : NodeType::kOther;
  *major_out = major(st.st_rdev);
  *minor_out = minor(st.st_rdev);
  return true;
}

size_t Similarity(std::string_view devpath, std::string_view anchor) {
  auto common_prefix = [](std::string_view a, std::string_view b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return n;
  };
  size_t suffix = 0;
  while (suffix < devpath.size() && suffix < anchor.size() &&
         devpath[devpath.size() - 1 - suffix] == anchor[anchor.size() - 1 - suffix]) {
    ++suffix;
  }
  // Names alike ("loop12" for "loop120") count too: that is the usual near miss for a node name.
  size_t name =
      common_prefix(devpath.substr(devpath.rfind('/') + 1), anchor.substr(anchor.rfind('/') + 1));
  return std::max({common_prefix(devpath, anchor), suffix, name});
}

}  // namespace kata
