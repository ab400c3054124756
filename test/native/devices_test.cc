// Parsers of the device layer (PCI paths, CCW bus ids, SCSI addresses, raw uevents) and the
// matchers' exactness, with Kata's own vectors. Built for every arch, so nothing here may
// depend on byte order or on this machine's devices.
#include <unistd.h>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "check.h"
#include "device.h"
#include "pci.h"
#include "uevent.h"

using namespace kata;

namespace {

std::string Msg(std::initializer_list<std::string> parts) {
  std::string s;
  for (const std::string& p : parts) {
    s += p;
    s.push_back('\0');
  }
  return s;
}

bool Parse(const std::string& s, Uevent* ev) { return ParseUevent(s.data(), s.size(), ev); }

Uevent Block(const char* action, const char* devpath, const char* devname,
             const char* devtype = "disk") {
  Uevent ev;
  ev.action = action;
  ev.devpath = devpath;
  ev.subsystem = "block";
  ev.devname = devname;
  ev.devtype = devtype;
  return ev;
}

std::unique_ptr<DeviceMatcher> Matcher(Bus bus, const char* spec) {
  DeviceError err;
  // A sysfs root that does not exist: PCI paths of one element need no bridge lookups.
  auto m = MakeDeviceMatcher(bus, spec, "", "/nonexistent-sysfs", &err);
  CHECK(m != nullptr);
  return m;
}

}  // namespace

KATA_TEST(pci_path_valid) {
  PciPath p;
  CHECK(ParsePciPath("02", &p));
  CHECK_EQ(p.slots.size(), size_t{1});
  CHECK_EQ(p.slots[0].slot, 2);
  CHECK_EQ(p.slots[0].fn, 0);
  CHECK_EQ(p.root_complex, -1);
  CHECK(ParsePciPath("0a/00/1f", &p));
  CHECK_EQ(p.slots.size(), size_t{3});
  CHECK_EQ(p.slots[0].slot, 0x0a);
  CHECK_EQ(p.slots[2].slot, 0x1f);
  CHECK(ParsePciPath("02.1/03.7", &p));
  CHECK_EQ(p.slots[0].fn, 1);
  CHECK_EQ(p.slots[1].fn, 7);
  CHECK(ParsePciPath("1F", &p));
  CHECK_EQ(p.slots[0].slot, 0x1f);
  CHECK(ParsePciPath("2", &p));
  CHECK_EQ(p.slots[0].slot, 2);
}

KATA_TEST(pci_path_numa_form) {
  PciPath p;
  CHECK(ParsePciPath("20/00/02", &p));
  CHECK_EQ(p.root_complex, 0x20);
  CHECK_EQ(p.slots.size(), size_t{2});
  CHECK_EQ(p.slots[1].slot, 2);
  CHECK(ParsePciPath("ff/01", &p));
  CHECK_EQ(p.root_complex, 0xff);
  CHECK(!ParsePciPath("20", &p));        // a root complex alone names no device
  CHECK(!ParsePciPath("20.1/00", &p));   // a root complex has no function
  CHECK(!ParsePciPath("02/20/00", &p));  // only the first element may name one
  CHECK(!ParsePciPath("20/20/00", &p));
}

KATA_TEST(pci_path_invalid) {
  PciPath p;
  for (const char* bad : {"", "20", "00.8", "//", "xyz", "02 ", "0x2", " 02", "02/", "/02",
                          "02//03", "002", "02.", "02.10", "02.a", "-1", "+2", "02.1.1", "g0"}) {
    if (ParsePciPath(bad, &p)) std::fprintf(stderr, "  accepted '%s'\n", bad);
    CHECK(!ParsePciPath(bad, &p));
  }
  CHECK(!ParsePciPath(std::string_view("02\0", 3), &p));
  std::string deep;
  for (size_t i = 0; i <= kMaxPciPathDepth; ++i) deep += i == 0 ? "01" : "/01";
  CHECK(!ParsePciPath(deep, &p));
}

KATA_TEST(pci_names) {
  size_t len = 0;
  CHECK(IsPciBusName("0000:01"));
  CHECK(IsPciBusName("10000:01"));
  CHECK(!IsPciBusName("0000:1"));
  CHECK(!IsPciBusName("000:01"));
  CHECK(!IsPciBusName("0000:01x"));
  CHECK(IsPciDeviceName("0000:01:03.0", &len));
  CHECK_EQ(len, size_t{7});
  CHECK(!IsPciDeviceName("0000:01:03.8", &len));
  CHECK(!IsPciDeviceName("pci_bus", &len));
  CHECK(!IsPciDeviceName("0000:01:3.0", &len));
}

KATA_TEST(pci_to_sysfs_without_bridges) {
  PciPath p;
  CHECK(ParsePciPath("02", &p));
  std::string dir;
  DeviceError err;
  // The final element need not exist: one element needs no lookups at all.
  CHECK(PciPathToSysfs("/nonexistent/", p, 0, &dir, &err));
  CHECK_EQ(dir, std::string("/nonexistent/devices/pci0000:00/0000:00:02.0"));
  CHECK(PciPathToSysfs("/", p, 0x20, &dir, &err));
  CHECK_EQ(dir, std::string("/devices/pci0000:20/0000:20:02.0"));
  CHECK(ParsePciPath("02/03", &p));
  CHECK(!PciPathToSysfs("/nonexistent", p, 0, &dir, &err));
  CHECK_EQ(std::string(err.code), std::string("ERR_SYSFS"));
}

KATA_TEST(root_complex) {
  int rc = -1;
  CHECK(ParseRootComplex("", &rc));
  CHECK_EQ(rc, 0);
  CHECK(ParseRootComplex("20", &rc));
  CHECK_EQ(rc, 0x20);
  CHECK(!ParseRootComplex("200", &rc));
  CHECK(!ParseRootComplex("x", &rc));
}

KATA_TEST(ccw_device) {
  CcwDevice d;
  CHECK(ParseCcwDevice("0.0.0005", &d));
  CHECK_EQ(d.ssid, 0);
  CHECK_EQ(d.devno, 5);
  CHECK_EQ(d.BusId(), std::string("0.0.0005"));
  CHECK(ParseCcwDevice("0.3.ffff", &d));
  CHECK_EQ(d.ssid, 3);
  CHECK_EQ(d.devno, 0xffff);
  CHECK(ParseCcwDevice("0.1.a", &d));
  CHECK_EQ(d.BusId(), std::string("0.1.000a"));
  CHECK(ParseCcwDevice("0.0.0000", &d));
  for (const char* bad :
       {"", "0", "0.0", "0.0.", "0.0.00000", "0.4.0000", "1.0.0000", "0.0.xyz", "0.0.0.0",
        "00.0.0000", "0.0.-1", "0.0.0005 ", " 0.0.0005", "0x0.0.0005", "0..0005"}) {
    if (ParseCcwDevice(bad, &d)) std::fprintf(stderr, "  accepted '%s'\n", bad);
    CHECK(!ParseCcwDevice(bad, &d));
  }
}

KATA_TEST(scsi_address) {
  ScsiAddress a;
  CHECK(ParseScsiAddress("0:0", &a));
  CHECK(ParseScsiAddress("1:2", &a));
  CHECK_EQ(a.target, 1u);
  CHECK_EQ(a.lun, 2u);
  CHECK(ParseScsiAddress("4294967295:17", &a));
  CHECK_EQ(a.target, 4294967295u);
  for (const char* bad :
       {"", "1", "1:", ":1", "1:2:3", "a:b", "-1:0", "1: 2", "4294967296:0", "0x1:0", "1:2 "}) {
    if (ParseScsiAddress(bad, &a)) std::fprintf(stderr, "  accepted '%s'\n", bad);
    CHECK(!ParseScsiAddress(bad, &a));
  }
}

KATA_TEST(uevent_parse_kernel_message) {
  Uevent ev;
  std::string m =
      Msg({"add@/devices/virtual/block/loop9", "ACTION=add", "DEVPATH=/devices/virtual/block/loop9",
           "SUBSYSTEM=block", "MAJOR=7", "MINOR=9", "DEVNAME=loop9", "DEVTYPE=disk", "DISKSEQ=42",
           "SEQNUM=18446744073709551615"});
  CHECK(Parse(m, &ev));
  CHECK_EQ(ev.action, std::string("add"));
  CHECK_EQ(ev.devpath, std::string("/devices/virtual/block/loop9"));
  CHECK_EQ(ev.subsystem, std::string("block"));
  CHECK_EQ(ev.devname, std::string("loop9"));
  CHECK_EQ(ev.devtype, std::string("disk"));
  CHECK_EQ(ev.seqnum, UINT64_MAX);
  // The last field need not be NUL-terminated.
  m.pop_back();
  CHECK(Parse(m, &ev));
  CHECK_EQ(ev.seqnum, UINT64_MAX);
}

KATA_TEST(uevent_parse_refuses) {
  Uevent ev;
  CHECK(!ParseUevent(nullptr, 0, &ev));
  CHECK(!Parse("", &ev));
  CHECK(!Parse(Msg({"libudev", "whatever"}), &ev));
  CHECK(!Parse(Msg({"add/devices/x", "SUBSYSTEM=block"}), &ev));  // no '@'
  CHECK(!Parse(Msg({"add@devices/x"}), &ev));                     // not absolute
  CHECK(!Parse(Msg({"@/devices/x"}), &ev));                       // no action
  CHECK(!Parse(Msg({"ADD@/devices/x"}), &ev));                    // not a kernel action word
  CHECK(!Parse(Msg({"add@/devices/x", "ACTION=remove"}), &ev));   // contradicts the header
  CHECK(!Parse(Msg({"add@/devices/x", "DEVPATH=/devices/y"}), &ev));
  CHECK(!Parse(Msg({"add@/devices/x", "SEQNUM=18446744073709551616"}), &ev));
  CHECK(!Parse(Msg({"add@/devices/x", "SEQNUM=12a"}), &ev));
  std::string huge = "add@/devices/x";
  huge.resize(kMaxUeventSize + 1, 'a');
  CHECK(!Parse(huge, &ev));
  // Fields without '=' and empty ones are skipped, not fatal.
  CHECK(Parse(Msg({"change@/devices/x", "", "garbage", "SUBSYSTEM=block"}), &ev));
  CHECK_EQ(ev.subsystem, std::string("block"));
}

KATA_TEST(uevent_parse_arbitrary_bytes) {
  // Deterministic across arches: the generator and its distribution are fully specified.
  std::mt19937 rng(20261127u);
  std::string base = Msg({"add@/devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
                          "SUBSYSTEM=block", "DEVNAME=vda", "DEVTYPE=disk", "SEQNUM=7"});
  Uevent ev;
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string m = base;
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % m.size();
      switch (rng() % 3) {
        case 0:
          m[at] = static_cast<char>(rng() & 0xff);
          break;
        case 1:
          m.erase(at, 1 + rng() % 4);
          break;
        default:
          m.insert(at, 1, static_cast<char>(rng() & 0xff));
          break;
      }
      if (m.empty()) m = "x";
    }
    if (Parse(m, &ev)) {
      ++accepted;
      CHECK(!ev.devpath.empty() && ev.devpath[0] == '/');
    }
  }
  CHECK(accepted > 0);
  std::string noise(4096, '\0');
  for (int i = 0; i < 2000; ++i) {
    for (char& c : noise) c = static_cast<char>(rng() & 0xff);
    size_t len = rng() % noise.size();
    if (ParseUevent(noise.data(), len, &ev)) CHECK(!ev.devpath.empty() && ev.devpath[0] == '/');
  }
}

KATA_TEST(pci_matcher_exact) {
  auto m = Matcher(Bus::kPci, "02");
  CHECK(m->Matches(Block("add", "/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "vda")));
  CHECK(m->Matches(Block("change", "/devices/pci0000:00/0000:00:02.0/virtio12/block/vdb", "vdb")));
  CHECK(!m->Matches(Block("remove", "/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "vda")));
  // Kata's prefix regex accepts a partition; we do not.
  CHECK(!m->Matches(Block("add", "/devices/pci0000:00/0000:00:02.0/virtio1/block/vda/vda1", "vda1",
                          "partition")));
  CHECK(!m->Matches(
      Block("add", "/devices/pci0000:00/0000:00:02.0/virtio1/block/vda/vda1", "vda1", "disk")));
  // Substring neighbours: slot 02 is not slot 02.1, nor the device behind a bridge at 02.
  CHECK(!m->Matches(Block("add", "/devices/pci0000:00/0000:00:02.1/virtio1/block/vda", "vda")));
  CHECK(!m->Matches(
      Block("add", "/devices/pci0000:00/0000:00:02.0/0000:01:00.0/virtio1/block/vda", "vda")));
  CHECK(!m->Matches(Block("add", "/devices/pci0000:00/0000:00:02.0/virtio/block/vda", "vda")));
  CHECK(!m->Matches(Block("add", "/devices/pci0000:00/0000:00:02.0/virtio1x/block/vda", "vda")));
  CHECK(!m->Matches(Block("add", "/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "")));
  Uevent net = Block("add", "/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "vda");
  net.subsystem = "bdi";
  CHECK(!m->Matches(net));
}

// The PCI root bus where a device tree puts it (arm64 `virt`): lookups and uevent matches start
// there, and the ACPI location no longer matches.
KATA_TEST(pci_matcher_on_device_tree_root_bus) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("kata-dt-sysfs-" + std::to_string(::getpid()));
  const std::string rb = "/devices/platform/4010000000.pcie/pci0000:00";
  fs::create_directories(root.string() + rb + "/0000:00:02.0/pci_bus/0000:01");
  DeviceError err;
  auto m = MakeDeviceMatcher(Bus::kPci, "02/00", "", root.string(), &err);
  CHECK(m != nullptr);
  CHECK(m->Matches(
      Block("add", (rb + "/0000:00:02.0/0000:01:00.0/virtio2/block/vda").c_str(), "vda")));
  CHECK(!m->Matches(
      Block("add", "/devices/pci0000:00/0000:00:02.0/0000:01:00.0/virtio2/block/vda", "vda")));
  CHECK(!m->Matches(
      Block("add", (rb + "/0000:00:02.0/0000:01:00.1/virtio2/block/vda").c_str(), "vda")));
  CHECK(m->Describe().find(rb + "/0000:00:02.0/0000:01:00.0") != std::string::npos);
  auto one = MakeDeviceMatcher(Bus::kPci, "01", "", root.string(), &err);
  CHECK(one != nullptr);
  CHECK(one->Matches(Block("add", (rb + "/0000:00:01.0/virtio1/block/vdb").c_str(), "vdb")));
  // A second host bridge holding the same root bus is a tree we do not understand.
  fs::create_directories(root.string() + "/devices/platform/3f000000.pcie/pci0000:00");
  DeviceError two;
  CHECK(MakeDeviceMatcher(Bus::kPci, "01", "", root.string(), &two) == nullptr);
  CHECK(std::string(two.code) == "ERR_SYSFS");
  fs::remove_all(root);
}

KATA_TEST(ccw_matcher_exact) {
  auto m = Matcher(Bus::kCcw, "0.0.5");
  CHECK(m->Matches(Block("add", "/devices/css0/0.0.0000/0.0.0005/virtio0/block/vda", "vda")));
  CHECK(!m->Matches(
      Block("add", "/devices/css0/0.0.0000/0.0.0005/virtio0/block/vda/vda1", "vda1", "partition")));
  CHECK(!m->Matches(Block("add", "/devices/css0/0.0.0000/0.0.00051/virtio0/block/vda", "vda")));
  CHECK(!m->Matches(Block("add", "/devices/css0/0.0.000/0.0.0005/virtio0/block/vda", "vda")));
  CHECK(!m->Matches(Block("add", "/devices/css1/0.0.0000/0.0.0005/virtio0/block/vda", "vda")));
}

KATA_TEST(scsi_matcher_exact) {
  auto m = Matcher(Bus::kScsi, "1:2");
  const char* base = "/devices/pci0000:00/0000:00:03.0/virtio2/host0/target0:0:1/";
  CHECK(m->Matches(Block("add", (std::string(base) + "0:0:1:2/block/sda").c_str(), "sda")));
  CHECK(m->Matches(Block("add", "/devices/x/host12/target12:0:1/12:0:1:2/block/sdc", "sdc")));
  CHECK(!m->Matches(
      Block("add", (std::string(base) + "0:0:1:2/block/sda/sda1").c_str(), "sda1", "partition")));
  CHECK(!m->Matches(Block("add", (std::string(base) + "0:0:1:20/block/sda").c_str(), "sda")));
  CHECK(!m->Matches(Block("add", (std::string(base) + "0:0:11:2/block/sda").c_str(), "sda")));
  CHECK(!m->Matches(Block("add", (std::string(base) + "0:1:1:2/block/sda").c_str(), "sda")));
  CHECK(!m->Matches(Block("add", (std::string(base) + "x0:0:1:2/block/sda").c_str(), "sda")));
}

KATA_TEST(mmio_and_pmem_matchers_exact) {
  auto mmio = Matcher(Bus::kMmio, "vdb");
  CHECK(mmio->Matches(
      Block("add", "/devices/platform/a003e00.virtio_mmio/virtio3/block/vdb", "vdb")));
  CHECK(!mmio->Matches(
      Block("add", "/devices/platform/a003e00.virtio_mmio/virtio3/block/vdb1", "vdb1")));
  CHECK(!mmio->Matches(
      Block("add", "/devices/platform/x/virtio3/block/vda/vdb", "vdb", "partition")));
  CHECK(!mmio->Matches(Block("add", "/devices/platform/x/virtio3/block/vdbb", "vdbb")));
  auto pmem = Matcher(Bus::kPmem, "pmem0");
  CHECK(pmem->Matches(Block(
      "add", "/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0/namespace0.0/block/pmem0",
      "pmem0")));
  CHECK(!pmem->Matches(Block(
      "add", "/devices/platform/e820_pmem/ndbus0/region0/namespace0.0/block/pmem0", "pmem0")));
  CHECK(!pmem->Matches(Block("add",
                             "/devices/LNXSYSTM:00/ndbus0/region0/namespace0.0/block/pmem0/pmem0p1",
                             "pmem0p1", "partition")));
  CHECK(!pmem->Matches(
      Block("add", "/devices/LNXSYSTM:00/ndbus0/region0/namespace0.0/block/pmem01", "pmem01")));
}

KATA_TEST(matcher_refuses_bad_specs) {
  DeviceError err;
  CHECK(MakeDeviceMatcher(Bus::kPci, "xyz", "", "/sys", &err) == nullptr);
  CHECK_EQ(std::string(err.code), std::string("ERR_INVALID_PCI_PATH"));
  err = DeviceError();
  CHECK(MakeDeviceMatcher(Bus::kPci, "20/02", "21", "/sys", &err) ==
        nullptr);  // two root complexes
  CHECK_EQ(std::string(err.code), std::string("ERR_INVALID_PCI_PATH"));
  err = DeviceError();
  CHECK(MakeDeviceMatcher(Bus::kCcw, "0.4.0000", "", "/sys", &err) == nullptr);
  CHECK_EQ(std::string(err.code), std::string("ERR_INVALID_CCW_DEVICE"));
  err = DeviceError();
  CHECK(MakeDeviceMatcher(Bus::kScsi, "1", "", "/sys", &err) == nullptr);
  CHECK_EQ(std::string(err.code), std::string("ERR_INVALID_SCSI_ADDRESS"));
  for (const char* bad : {"", ".", "..", "a/b"}) {
    err = DeviceError();
    CHECK(MakeDeviceMatcher(Bus::kMmio, bad, "", "/sys", &err) == nullptr);
    CHECK(err.code != nullptr);
  }
}

KATA_TEST(monitor_cache_and_waiters) {
  // Delivered by hand: the cache and waiter logic, without the netlink socket.
  UeventMonitor& mon = UeventMonitor::Instance();
  auto m = Matcher(Bus::kMmio, "kata-test-disk0");
  const char* path = "/devices/virtual/block/kata-test-disk0";
  mon.Deliver(Block("add", path, "kata-test-disk0"));
  {
    UeventWaiter w;
    w.matcher = m.get();
    mon.Subscribe(&w);
    CHECK(w.matched);
    CHECK(w.from_cache);
    CHECK(mon.Wait(&w, std::chrono::steady_clock::now()) == WaitStatus::kMatched);
    mon.Unsubscribe(&w);
  }
  mon.Deliver(Block("remove", path, "kata-test-disk0"));
  {
    UeventWaiter w;
    w.matcher = m.get();
    mon.Subscribe(&w);
    CHECK(!w.matched);  // remove purged the cache
    CHECK(mon.Wait(&w, std::chrono::steady_clock::now()) == WaitStatus::kDeadline);
    mon.Deliver(Block("add", "/devices/virtual/block/kata-test-disk0/kata-test-disk0p1",
                      "kata-test-disk0p1", "partition"));
    CHECK(!w.matched);
    mon.Deliver(Block("change", path, "kata-test-disk0"));
    CHECK(w.matched);
    CHECK(!w.from_cache);
    mon.Unsubscribe(&w);
  }
  {
    UeventWaiter w;
    w.matcher = m.get();
    mon.Cancel(&w);
    mon.Subscribe(&w);
    CHECK(!w.matched);  // a cancelled waiter takes nothing from the cache
    CHECK(mon.Wait(&w, std::chrono::steady_clock::now() + std::chrono::seconds(5)) ==
          WaitStatus::kCancelled);
    mon.Unsubscribe(&w);
  }
  mon.Deliver(Block("remove", path, "kata-test-disk0"));
  CHECK_EQ(mon.GetState().waiters, size_t{0});
}

KATA_TEST(similarity_ranks_neighbours) {
  std::string anchor = "/devices/pci0000:00/0000:00:05.0/virtio";
  CHECK(Similarity("/devices/pci0000:00/0000:00:05.0/virtio3/block/vdb", anchor) >
        Similarity("/devices/virtual/block/loop3", anchor));
  CHECK(Similarity("/devices/platform/x/block/vdb", "/block/vdb") == std::strlen("/block/vdb"));
}
