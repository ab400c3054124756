// verity_info comes from the host's runtime: whatever fields it carries, the table builder must
// refuse or produce one well-formed verity line (ten parameters, no separator smuggled in).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "dm.h"
#include "fuzz.h"

// Input: the fields of DmVerityInfo and the data device, one per line.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> f(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\n' && f.size() < 10) {
      f.emplace_back();
    } else {
      f.back().push_back(static_cast<char>(data[i]));
    }
  }
  f.resize(10);
  auto num = [](const std::string& s) { return std::strtoull(s.c_str(), nullptr, 10); };
  kata::VerityInfo v;
  v.hashtype = f[0];
  v.hash = f[1];
  v.blocknum = num(f[2]);
  v.blocksize = num(f[3]);
  v.hashsize = num(f[4]);
  v.offset = num(f[5]);
  v.salt = f[6];
  v.hash_type = static_cast<uint32_t>(num(f[7]));
  v.no_superblock = f[8] == "1";
  std::string params;
  uint64_t sectors = 0;
  const char* bad = nullptr;
  if (kata::VerityTable(v, f[9], &params, &sectors, &bad)) {
    size_t spaces = 0;
    for (char c : params) {
      Require(c != '\n' && c != '\0' && c != '\t');
      if (c == ' ') ++spaces;
    }
    Require(spaces == 9);
    Require(sectors > 0 && sectors * 512 == v.blocknum * v.blocksize);
    Require(v.offset >= v.blocknum * v.blocksize);
  } else {
    Require(bad != nullptr && *bad != '\0');
  }
  return 0;
}
