// device-mapper verity targets: the table a verity device needs (a pure function of the runtime's
// DmVerityInfo) and the ioctls on /dev/mapper/control that create and remove one, as Kata's
// kata-types dmverity.rs does through the devicemapper crate.
#pragma once

#include <cstdint>
#include <string>

#include "syserror.h"

namespace kata {

// Kata's DmVerityInfo (kata-types mount.rs), one field each.
struct VerityInfo {
  std::string hashtype;        // "sha256" or "sha1" (case-insensitive, as Kata's runtime checks)
  std::string hash;            // root hash, hex: 64 digits for sha256, 40 for sha1
  uint64_t blocknum = 0;       // data blocks, 1 .. 2^32-1
  uint64_t blocksize = 0;      // data block size in bytes, a power of two in 512 .. 512 KiB
  uint64_t hashsize = 0;       // hash block size in bytes, same range
  uint64_t offset = 0;         // byte offset of the hash area (its superblock) on the same device
  std::string salt;            // hex, or "" / "-" for none
  uint32_t hash_type = 1;      // verity format: 0 (Chrome OS) or 1 (current)
  bool no_superblock = false;  // true: the hash tree starts at `offset` (no veritysetup superblock)
};

// The verity target's parameter line and length in 512-byte sectors for `data_dev` ("major:minor",
// used both as data and hash device, as Kata does), or false with `*bad` naming the offending
// field ("hashtype", "hash", "blocknum", "blocksize", "hashsize", "offset", "salt", "hash_type",
// "data_dev"). Checks are Kata's runtime's DmVerityInfo.IsValid plus what the kernel would refuse.
bool VerityTable(const VerityInfo& info, const std::string& data_dev, std::string* params,
                 uint64_t* sectors, const char** bad);

// DM_DEV_CREATE `name`, DM_TABLE_LOAD one read-only `verity` target of `sectors` with `params`,
// DM_DEV_SUSPEND without the suspend flag (= resume, the table goes live), then mknod `node` (the
// kernel names the disk dm-N; without udev nobody makes /dev/mapper/<name>, so we do, replacing a
// stale one as Kata does). Any failure after the create removes the device again.
bool DmCreateVerity(const std::string& control, const std::string& name, uint64_t sectors,
                    const std::string& params, const std::string& node, unsigned* major,
                    unsigned* minor, SysError* error);

// DM_DEV_REMOVE `name` (with DM_DEFERRED_REMOVE when `deferred`: the kernel removes the device when
// its last opener, the mount, goes), then unlinks `node`. A device that is already gone is fine.
bool DmRemove(const std::string& control, const std::string& name, const std::string& node,
              bool deferred, SysError* error);

}  // namespace kata
