// Creating mount points beneath an allowed root without ever following a symlink: the check
// before anything is touched (CheckBeneath) and the creation itself (MakeBeneath).
#pragma once

#include <sys/types.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "fd.h"
#include "syserror.h"

namespace kata {

enum class BeneathError {
  kNone = 0,
  kSymlink,  // a component (or the leaf) is a symlink: the path could be redirected
  kNotDir,   // a component on the way is not a directory
};

// Walks `rel` (relative, normalized, no "." or "..") from the already existing directory `root`,
// one component at a time with O_NOFOLLOW, and stops at the first component that does not exist.
// Nothing is created. `bad` receives the offending path on a kSymlink/kNotDir result. A system
// error other than ENOENT is reported through `error` (return value false).
bool CheckBeneath(const std::string& root, const std::string& rel, BeneathError* result,
                  std::string* bad, SysError* error);

// Creates `root` if missing (it is trusted configuration), then every missing component of `rel`
// beneath it with mkdirat, opening each with O_NOFOLLOW|O_DIRECTORY so a symlink swapped in
// between check and creation is refused (ELOOP/ENOTDIR). With `leaf_file` the last component is
// created as an empty regular file (a bind target for a device node). `created` receives, in
// creation order, the absolute paths this call created; on failure they are removed again.
bool MakeBeneath(const std::string& root, const std::string& rel, unsigned mode, bool leaf_file,
                 std::vector<std::string>* created, SysError* error);

// A root's entries read once, standing in for the first component's lookup when many mount
// points are checked side by side in it (ReadRootListing). Empty (`ok` false) where a listing
// may disagree with a lookup, or when the directory could not be read in one go.
struct RootListing {
  bool ok = false;
  std::unordered_map<std::string, unsigned char> types;  // name -> dirent d_type
};
RootListing ReadRootListing(int root_fd);

// Where a clean CheckBeneathAt walk got to: the deepest directory of `rel` it opened (O_PATH,
// reached without following a symlink) and how many of rel's components lead to it (0: it opened
// none, the root itself is as far as it got).
struct BeneathReach {
  Fd dir;
  size_t depth = 0;
};

// The same two steps from a root already open (one open per root for a whole request).
// CheckBeneathAt's `root` and MakeBeneathAt's are only for the paths reported. With `listing`,
// the first component's type comes from it when it settles the lookup (absent, or a known type);
// the verdicts are the walk's own either way. With `reach`, a clean walk hands over where it got,
// so the creation can go on from there instead of walking the existing components again. With
// `leaf`, the mount point's own descriptor is handed back (a directory, or an O_PATH file): the
// target a mount goes onto without resolving its path again.
bool CheckBeneathAt(int root_fd, const std::string& root, const std::string& rel,
                    BeneathError* result, std::string* bad, SysError* error,
                    const RootListing* listing = nullptr, BeneathReach* reach = nullptr);
bool MakeBeneathAt(int root_fd, const std::string& root, const std::string& rel, unsigned mode,
                   bool leaf_file, std::vector<std::string>* created, SysError* error, Fd* leaf);

// Opens `rel` below the directory `dir` as an O_PATH descriptor, one component at a time with
// O_NOFOLLOW and crossing mounts as the kernel's own walk does: what openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS) does, for kernels before 5.6 (and emulators) without it. Nothing is
// created. -1 with openat2's errno: ELOOP for a symlink, EXDEV for "..", ENOTDIR, ENOENT.
int OpenBeneathWalk(int dir, const std::string& rel);

// Opens the allowed root (O_RDONLY|O_DIRECTORY), creating it like `mkdir -p` only when missing.
Fd OpenRoot(const std::string& root, SysError* error);

}  // namespace kata
