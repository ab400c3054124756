// Netlink uevent datagrams: arbitrary bytes, missing NULs, huge sizes. The parser must refuse
// what is not a kernel uevent and produce sane fields for what is; every bus's matcher must
// answer for any parsed event without crashing.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "device.h"
#include "fuzz.h"
#include "uevent.h"

namespace {

// Matchers that need no sysfs walk at construction (MMIO and pmem name a node; CCW and SCSI
// match on devpath shape), built once.
const std::vector<std::unique_ptr<kata::DeviceMatcher>>& Matchers() {
  static const auto* matchers = [] {
    auto* v = new std::vector<std::unique_ptr<kata::DeviceMatcher>>();
    kata::DeviceError err;
    const struct {
      kata::Bus bus;
      const char* spec;
    } specs[] = {{kata::Bus::kMmio, "/dev/vdb"},
                 {kata::Bus::kPmem, "/dev/pmem0"},
                 {kata::Bus::kCcw, "0.0.0005"},
                 {kata::Bus::kScsi, "0:1"}};
    for (const auto& s : specs) {
      auto m = kata::MakeDeviceMatcher(s.bus, s.spec, "", "/nonexistent-sysfs", &err);
      if (m) v->push_back(std::move(m));
    }
    return v;
  }();
  return *matchers;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kata::Uevent ev;
  const bool ok = kata::ParseUevent(reinterpret_cast<const char*>(data), size, &ev);
  if (ok) {
    Require(size <= kata::kMaxUeventSize);
    Require(!ev.action.empty());
    Require(!ev.devpath.empty() && ev.devpath[0] == '/');
    Require(ev.action.size() < size && ev.devpath.size() < size);
  }
  if (!ok) ev = kata::Uevent{};  // a refused datagram is never handed to matchers
  for (const auto& m : Matchers()) {
    const bool matched = m->Matches(ev);
    Require(!matched || ok);  // an empty event matches nothing
    (void)kata::Similarity(ev.devpath, m->Anchor());
  }
  return 0;
}
