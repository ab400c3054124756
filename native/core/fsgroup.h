// Kata's fsGroup ownership change of a volume (kubelet's SetVolumeOwnership).
#pragma once

#include <string>

#include "syserror.h"

namespace kata {

struct FsGroupResult {
  bool skipped = false;  // OnRootMismatch: root already had the group and the bits
  long changed = 0;      // inodes whose group/mode were set
};

// Kata's fsGroup: recursively chgrp to `gid` and add rw (or r when read-only) for user and group,
// x for directories, setgid on directories; symlinks are skipped, never followed. With
// `on_root_mismatch`, nothing is done when the root already has the gid, the bits and setgid.
bool ApplyFsGroup(const std::string& path, unsigned gid, bool read_only, bool on_root_mismatch,
                  FsGroupResult* result, SysError* error);

}  // namespace kata
