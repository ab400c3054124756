// Shared by the fuzz targets: an invariant that fails is a crash libFuzzer records.
#pragma once

#include <cstdlib>

inline void Require(bool ok) {
  if (!ok) std::abort();
}
