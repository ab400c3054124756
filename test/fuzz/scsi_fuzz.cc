// SCSI addresses ("target:lun", decimal) from the host: parse or refuse; what parses prints back
// to an address that parses to the same numbers.
#include <cstdint>
#include <string>
#include <string_view>

#include "device.h"
#include "fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  kata::ScsiAddress addr;
  if (!kata::ParseScsiAddress(text, &addr)) return 0;
  const std::string canon = std::to_string(addr.target) + ":" + std::to_string(addr.lun);
  kata::ScsiAddress again;
  Require(kata::ParseScsiAddress(canon, &again));
  Require(again.target == addr.target && again.lun == addr.lun);
  return 0;
}
