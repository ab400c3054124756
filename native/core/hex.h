// Hex digits as bus ids spell them (PCI slots, CCW device numbers).
#pragma once

namespace kata {

// The value of one hex digit, either case; -1 for anything else.
constexpr int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace kata
