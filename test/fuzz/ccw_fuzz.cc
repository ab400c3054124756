// CCW bus ids ("0.<ssid>.<devno>") from the host: parse or refuse, and what parses prints back
// in sysfs's canonical form, which parses to the same device.
#include <cstdint>
#include <string>
#include <string_view>

#include "device.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  kata::CcwDevice dev;
  if (!kata::ParseCcwDevice(text, &dev)) return 0;
  Require(dev.cssid == 0 && dev.ssid <= 3);
  const std::string canon = dev.BusId();
  Require(canon.size() == 8);  // "0.s.dddd"
  kata::CcwDevice again;
  Require(kata::ParseCcwDevice(canon, &again));
  Require(again.ssid == dev.ssid && again.devno == dev.devno && again.BusId() == canon);
  return 0;
}
