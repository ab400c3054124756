// The steps of one storage carried out in one job on a pool thread, recording what they did so
// release and rollback can undo exactly that: the mount point walked and created beneath its
// allowed root, then the mount onto it resolved beneath that same root.
#pragma once

#include <string>
#include <vector>

#include "mount.h"
#include "options.h"
#include "syserror.h"

namespace kata {

struct MountPointSteps {
  std::string root;        // the allowed root
  std::string rel;         // the mount point below it
  unsigned mode = 0755;    // for directories it creates
  bool leaf_file = false;  // the mount point is a file (a device node is bound onto it)
  bool beneath = true;     // resolve the mount target with openat2 beneath `root`
};

// What a job did, in order: the paths it created and the targets it mounted.
struct UndoLog {
  std::vector<std::string> created;
  std::vector<std::string> mounted;
};

// MakeBeneath, then Mount onto root/rel. `undo` holds what was done even when a step fails.
bool MakeMountPointAndMount(const MountPointSteps& point, const std::string& source,
                            const std::string& fstype, const MountOptions& options, MountApi api,
                            UndoLog* undo, SysError* error);

}  // namespace kata
