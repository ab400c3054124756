// PCI paths come from the host's runtime. Any text must parse or be refused, never crash, and
// what parses must be within the bus's limits and print back to itself.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz.h"
#include "pci.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  kata::PciPath path;
  if (kata::ParsePciPath(text, &path)) {
    Require(!path.slots.empty() && path.slots.size() <= kata::kMaxPciPathDepth);
    Require(path.root_complex >= -1 && path.root_complex <= 0xff);
    for (const kata::PciSlot& s : path.slots) Require(s.slot <= 0x1f && s.fn <= 7);
    // Canonical form re-parses to the same path.
    static const char kHex[] = "0123456789abcdef";
    std::string canon;
    if (path.root_complex >= 0) {
      canon += kHex[path.root_complex >> 4];
      canon += kHex[path.root_complex & 15];
    }
    for (const kata::PciSlot& s : path.slots) {
      if (!canon.empty()) canon += '/';
      canon += kHex[s.slot >> 4];
      canon += kHex[s.slot & 15];
      canon += '.';
      canon += kHex[s.fn];
    }
    kata::PciPath again;
    Require(kata::ParsePciPath(canon, &again));
    Require(again.root_complex == path.root_complex && again.slots.size() == path.slots.size());
    for (size_t i = 0; i < path.slots.size(); ++i) {
      Require(again.slots[i].slot == path.slots[i].slot && again.slots[i].fn == path.slots[i].fn);
    }
  }
  int rc = 0;
  if (kata::ParseRootComplex(text, &rc)) Require(rc >= 0 && rc <= 0xff);
  size_t bus_len = 0;
  if (kata::IsPciDeviceName(text, &bus_len)) Require(bus_len > 0 && bus_len < size);
  (void)kata::IsPciBusName(text);
  return 0;
}
