#include "release.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "fault.h"
#include "tree.h"

namespace kata {
namespace {

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x1000U
#endif
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U
#endif
#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x2000
#endif
// statmount(2), Linux 6.8: the same number on every architecture (the unified table).
#ifndef SYS_statmount
#define SYS_statmount 457
#endif

// Where the kernel's struct statx keeps stx_mnt_id (after stx_dev_minor): glibc before 2.35
// names that word padding.
constexpr size_t kStxMntIdOffset = 0x90;
static_assert(sizeof(struct statx) >= kStxMntIdOffset + sizeof(uint64_t),
              "struct statx too small for stx_mnt_id");

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// statx's mount ID of `mask`'s kind for `path`: 1 found, 0 the kernel did not give it, -1 failed
// (errno set).
int StatxMountId(const char* path, unsigned mask, uint64_t* id, bool* mount_root = nullptr) {
  struct statx stx;
  if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, mask, &stx) != 0) return -1;
  if (mount_root != nullptr) {
    *mount_root = (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
                  (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
  }
  if ((stx.stx_mask & mask) == 0) return 0;
  std::memcpy(id, reinterpret_cast<const char*>(&stx) + kStxMntIdOffset, sizeof(*id));
  // No mount has ID 0; an emulator that passes the mask through without the field gives it.
  return *id != 0 ? 1 : 0;
}

// The kernel's struct mnt_id_req (its first version) and the head of struct statmount up to the
// old (mountinfo) IDs, as Linux 6.8 defined them.
struct MntIdReq {
  uint32_t size;
  uint32_t spare;
  uint64_t mnt_id;
  uint64_t param;
};
struct StatmountHead {
  uint32_t size;
  uint32_t mnt_opts;
  uint64_t mask;
  uint32_t sb_dev_major;
  uint32_t sb_dev_minor;
  uint64_t sb_magic;
  uint32_t sb_flags;
  uint32_t fs_type;
  uint64_t mnt_id;
  uint64_t mnt_parent_id;
  uint32_t mnt_id_old;
  uint32_t mnt_parent_id_old;
};
constexpr uint64_t kStatmountMntBasic = 0x2;

// Maps a unique mount ID to mountinfo's: 1 found, 0 no such mount in this namespace (unmounted,
// or detached), -1 failed (errno set; EPROTO when the answer is not laid out as expected).
int OldMountId(uint64_t unique, long* old) {
  MntIdReq req{};
  req.size = sizeof(req);
  req.mnt_id = unique;
  req.param = kStatmountMntBasic;
  alignas(8) char buf[1024];
  std::memset(buf, 0, sizeof(buf));
  if (syscall(SYS_statmount, &req, buf, sizeof(buf), 0) != 0) return errno == ENOENT ? 0 : -1;
  StatmountHead head;
  std::memcpy(&head, buf, sizeof(head));
  if ((head.mask & kStatmountMntBasic) == 0 || head.mnt_id != unique || head.mnt_id_old == 0) {
    errno = EPROTO;
    return -1;
  }
  *old = static_cast<long>(head.mnt_id_old);
  return 1;
}

// mountinfo's ID of the mount on top at `path` (its last entry there), or -1 when none is.
long TopIdInTable(const std::vector<MountinfoEntry>& table, const std::string& path) {
  long top = -1;
  for (const MountinfoEntry& e : table) {
    if (e.mount_point == path) top = e.id;
  }
  return top;
}

// The plain (mountinfo) ID of the mount on top at `path`, or -1 when statx cannot say.
long PlainIdAt(const std::string& path, const std::vector<MountinfoEntry>& table,
               MountIdKind kind) {
  uint64_t id = 0;
  if (kind != MountIdKind::kNone) {
    return StatxMountId(path.c_str(), STATX_MNT_ID, &id) == 1 ? static_cast<long>(id) : -1;
  }
  return TopIdInTable(table, path);
}

// One umount2 (UMOUNT_NOFOLLOW, EBUSY retried per `opts`), recorded as a step.
bool UnmountStepAt(const std::string& path, UnmountStep::Kind kind, const UmountOptions& opts,
                   std::vector<UnmountStep>* steps, SysError* error) {
  UnmountStep step;
  step.kind = kind;
  step.path = path;
  const uint64_t t0 = NowNs();
  const bool ok = Umount(path.c_str(), opts, &step.error);
  step.duration_ns = NowNs() - t0;
  if (!ok) *error = step.error;
  steps->push_back(std::move(step));
  return ok;
}

void Gone(const std::string& path, std::vector<UnmountStep>* steps) {
  UnmountStep step;
  step.kind = UnmountStep::Kind::kGone;
  step.path = path;
  steps->push_back(std::move(step));
}

// The slow path: the recorded mount looked up in mountinfo, its descendants unmounted children
// first, then itself.
bool ReleaseByTable(const MountRef& mount, const UmountOptions& opts, MountIdKind kind,
                    std::vector<UnmountStep>* steps, SysError* error) {
  long plain = static_cast<long>(mount.id);
  if (kind == MountIdKind::kUnique) {
    const int r = OldMountId(mount.id, &plain);
    if (r == 0) {
      Gone(mount.path, steps);
      return true;
    }
    if (r < 0) {
      error->Set(errno, "statmount", mount.path);
      return false;
    }
  }
  // Each round reads the table again: an unmount can reveal a mount it hid, and others may mount
  // or unmount meanwhile. A round that unmounts nothing while descendants remain is stuck.
  constexpr size_t kRounds = 64;
  for (size_t round = 0; round < kRounds; ++round) {
    std::vector<MountinfoEntry> table;
    if (!ReadMountinfo(&table, error)) return false;
    const MountinfoEntry* self = nullptr;
    for (const MountinfoEntry& e : table) {
      if (e.id == plain) self = &e;
    }
    if (self == nullptr) {
      Gone(mount.path, steps);
      return true;
    }
    if (self->mount_point != mount.path) {
      // A plain ID reused by someone else's mount elsewhere: ours is gone.
      if (kind != MountIdKind::kUnique) {
        Gone(mount.path, steps);
        return true;
      }
      // Ours, but no longer where it was made (a directory on the way renamed, a symlink swapped
      // in): its path would reach something else. Kept, and retried by later releases.
      error->Set(EINVAL, "umount2", mount.path);
      return false;
    }
    const std::vector<size_t> order = DescendantsChildrenFirst(table, plain);
    if (order.empty()) {
      const std::string& path = mount.path;
      if (PlainIdAt(path, table, kind) != plain) {
        // Its path reaches another mount, not its descendant (a directory on the way swapped
        // for a symlink, or a mount over a parent): unmounting the path would take that one.
        // What umount2 says of a path that is not the mount: EINVAL; retried by later releases.
        error->Set(EINVAL, "umount2", path);
        return false;
      }
      return UnmountStepAt(path, UnmountStep::Kind::kRecorded, opts, steps, error);
    }
    // One unmount per round: it changes what the others' paths reach. The deepest mount that
    // is on top at its path and has no descendant left goes first.
    bool changed = false;
    bool raced = false;
    std::vector<long> skipped;
    for (size_t i : order) {
      const MountinfoEntry& d = table[i];
      bool blocked = PlainIdAt(d.mount_point, table, kind) != d.id;
      for (size_t k : DescendantsChildrenFirst(table, d.id)) {
        if (blocked) break;
        blocked = std::find(skipped.begin(), skipped.end(), table[k].id) != skipped.end();
      }
      if (blocked) {
        skipped.push_back(d.id);
        continue;
      }
      if (UnmountStepAt(d.mount_point, UnmountStep::Kind::kDescendant, opts, steps, error)) {
        changed = true;
        break;
      }
      // Gone between the read and the unmount, or (with no IDs from statx to tell) hidden
      // after all: the next candidate, and the next round sees.
      if (error->err != EINVAL && error->err != ENOENT) return false;
      *error = SysError();
      steps->pop_back();
      skipped.push_back(d.id);
      raced = true;
    }
    if (!changed && !raced) break;
  }
  // Descendants none of which is reachable by its path (hidden by a mount that is not ours), or
  // mounts appearing faster than they go: nothing else may be unmounted.
  error->Set(EBUSY, "umount2", mount.path);
  return false;
}

}  // namespace

long FdInfoMountId(int fd) {
  const std::string path = "/proc/self/fdinfo/" + std::to_string(fd);
  const int info = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (info < 0) return -1;
  char buf[512];
  ssize_t n;
  do {
    n = read(info, buf, sizeof(buf) - 1);
  } while (n < 0 && errno == EINTR);
  close(info);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* at = std::strstr(buf, "mnt_id:");
  return at == nullptr ? -1 : std::strtol(at + 7, nullptr, 10);
}

MountIdKind MountIdKindHere() {
  // A kind is used only when its answer for "/" is the ID mountinfo shows there: a seccomp
  // profile may refuse statmount, and an emulator (qemu-user) may set statx's mask bit without
  // copying the field, or give a number that is not the kernel's.
  static const MountIdKind kind = [] {
    uint64_t root = 0;
    SysError unread;
    if (!MountIdAt("/", MountIdKind::kNone, &root, &unread)) return MountIdKind::kNone;
    uint64_t id = 0;
    long old = 0;
    if (StatxMountId("/", STATX_MNT_ID_UNIQUE, &id) == 1 && OldMountId(id, &old) == 1 &&
        static_cast<uint64_t>(old) == root) {
      return MountIdKind::kUnique;
    }
    if (StatxMountId("/", STATX_MNT_ID, &id) == 1 && id == root) return MountIdKind::kPlain;
    return MountIdKind::kNone;
  }();
  return kind;
}

bool MountIdAt(const std::string& path, uint64_t* id, SysError* error) {
  return MountIdAt(path, MountIdKindHere(), id, error);
}

bool MountIdAt(const std::string& path, MountIdKind kind, uint64_t* id, SysError* error) {
  if (kind != MountIdKind::kNone) {
    const unsigned mask = kind == MountIdKind::kUnique ? STATX_MNT_ID_UNIQUE : STATX_MNT_ID;
    if (StatxMountId(path.c_str(), mask, id) == 1) return true;
    error->Set(errno ? errno : ENOSYS, "statx", path);
    return false;
  }
  std::vector<MountinfoEntry> table;
  if (!ReadMountinfo(&table, error)) return false;
  const long top = TopIdInTable(table, path);
  if (top < 0) {
    error->Set(EINVAL, "mountinfo", path);
    return false;
  }
  *id = static_cast<uint64_t>(top);
  return true;
}

bool MountIdOfFd(int fd, uint64_t* id) {
  const MountIdKind kind = MountIdKindHere();
  if (kind == MountIdKind::kNone) {
    // fdinfo's "mnt_id:" (Linux 3.15) is mountinfo's ID, the kind recorded here.
    const long plain = FdInfoMountId(fd);
    if (plain <= 0) return false;
    *id = static_cast<uint64_t>(plain);
    return true;
  }
  struct statx stx;
  const unsigned mask = kind == MountIdKind::kUnique ? STATX_MNT_ID_UNIQUE : STATX_MNT_ID;
  if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, mask, &stx) != 0 ||
      (stx.stx_mask & mask) == 0) {
    return false;
  }
  std::memcpy(id, reinterpret_cast<const char*>(&stx) + kStxMntIdOffset, sizeof(*id));
  return *id != 0;
}

std::vector<size_t> DescendantsChildrenFirst(const std::vector<MountinfoEntry>& table, long id) {
  std::map<long, size_t> at;
  for (size_t i = 0; i < table.size(); ++i) at[table[i].id] = i;
  // Depth below `id` per entry: 0 not a descendant (memoized; a cycle cannot occur in a real
  // table, and is cut by the bound on the walk).
  std::vector<long> depth(table.size(), -1);
  std::vector<size_t> found;
  for (size_t i = 0; i < table.size(); ++i) {
    long d = 0;
    long cur = table[i].id;
    bool reaches = false;
    for (size_t steps = 0; steps <= table.size(); ++steps) {
      const auto it = at.find(cur);
      if (it == at.end()) break;
      const MountinfoEntry& e = table[it->second];
      if (e.parent == e.id) break;  // the namespace's root
      ++d;
      if (e.parent == id) {
        reaches = true;
        break;
      }
      cur = e.parent;
    }
    if (table[i].id == id || !reaches) continue;
    depth[i] = d;
    found.push_back(i);
  }
  std::sort(found.begin(), found.end(), [&](size_t a, size_t b) {
    if (depth[a] != depth[b]) return depth[a] > depth[b];
    return a > b;
  });
  return found;
}

bool ReleaseMount(const MountRef& mount, const UmountOptions& opts, std::vector<UnmountStep>* steps,
                  SysError* error) {
  return ReleaseMount(mount, opts, MountIdKindHere(), steps, error);
}

bool ReleaseMount(const MountRef& mount, const UmountOptions& opts, MountIdKind kind,
                  std::vector<UnmountStep>* steps, SysError* error, bool on_top) {
  if (mount.id == 0) {
    // Made without a known ID: released by path as before identities were recorded.
    return UnmountStepAt(mount.path, UnmountStep::Kind::kRecorded, opts, steps, error);
  }
  if (kind != MountIdKind::kNone) {
    const unsigned mask = kind == MountIdKind::kUnique ? STATX_MNT_ID_UNIQUE : STATX_MNT_ID;
    uint64_t id = 0;
    bool root = false;
    if (on_top ||
        (StatxMountId(mount.path.c_str(), mask, &id, &root) == 1 && id == mount.id && root)) {
      UnmountStep step;
      step.path = mount.path;
      const uint64_t t0 = NowNs();
      int r;
      do {
        r = umount2(mount.path.c_str(), UMOUNT_NOFOLLOW);
      } while (r != 0 && errno == EINTR);
      step.duration_ns = NowNs() - t0;
      if (r == 0) {
        steps->push_back(std::move(step));
        return true;
      }
      if (errno != EBUSY && errno != EINVAL) {
        step.error.Set(errno, "umount2", mount.path);
        *error = step.error;
        steps->push_back(std::move(step));
        return false;
      }
    }
  }
  return ReleaseByTable(mount, opts, kind, steps, error);
}

void ReleaseStorage(const StorageRelease& r, const UmountOptions& umount, ReleaseOutcome* out,
                    bool on_top) {
  const uint64_t t0 = NowNs();
  const MountIdKind kind = MountIdKindHere();
  size_t left = r.mounted.size();
  while (left > 0) {
    CrashPoint();
    // Only the newest was found on top; once it is gone the next one is asked as usual.
    const bool top = on_top && left == r.mounted.size();
    if (!ReleaseMount(r.mounted[left - 1], umount, kind, &out->steps, &out->error, top)) break;
    --left;
  }
  out->mounts_left = left;
  if (left == 0) {
    for (size_t k = r.created.size(); k-- > 0;) {
      CrashPoint();
      SysError e;
      const bool tree = k < r.trees.size() && r.trees[k];
      if ((tree ? RemoveTree(r.created[k], &e) : RemoveEntry(r.created[k], &e)) || e.err == ENOENT)
        continue;
      out->leftovers.push_back(r.created[k]);
      out->leftover_errors.push_back(std::move(e));
    }
  }
  out->duration_ns = NowNs() - t0;
}

void ReleaseStorages(const std::vector<StorageRelease>& releases, const UmountOptions& umount,
                     std::vector<ReleaseOutcome>* outcomes, bool on_top) {
  outcomes->assign(releases.size(), ReleaseOutcome());
  for (size_t i = 0; i < releases.size(); ++i)
    ReleaseStorage(releases[i], umount, &(*outcomes)[i], on_top);
}

bool RecordedOnTop(const std::vector<StorageRelease>& releases) {
  const MountIdKind kind = MountIdKindHere();
  if (kind == MountIdKind::kNone) return false;  // the ID would cost a mountinfo read
  const unsigned mask = kind == MountIdKind::kUnique ? STATX_MNT_ID_UNIQUE : STATX_MNT_ID;
  for (const StorageRelease& r : releases) {
    for (const MountRef& m : r.mounted) {
      uint64_t id = 0;
      bool root = false;
      if (m.id == 0 || StatxMountId(m.path.c_str(), mask, &id, &root) != 1 || id != m.id || !root)
        return false;
    }
  }
  return true;
}

bool RecordedMountsPresent(const std::vector<MountRef>& mounts, std::vector<bool>* present,
                           SysError* error) {
  present->assign(mounts.size(), false);
  if (mounts.empty()) return true;
  const MountIdKind kind = MountIdKindHere();
  std::vector<MountinfoEntry> table;
  if (!ReadMountinfo(&table, error)) return false;
  for (size_t i = 0; i < mounts.size(); ++i) {
    const MountRef& m = mounts[i];
    if (m.id == 0) {
      (*present)[i] = TopIdInTable(table, m.path) >= 0;
      continue;
    }
    long plain = static_cast<long>(m.id);
    if (kind == MountIdKind::kUnique) {
      const int r = OldMountId(m.id, &plain);
      if (r == 0) continue;
      if (r < 0) {
        error->Set(errno, "statmount", m.path);
        return false;
      }
    }
    for (const MountinfoEntry& e : table) {
      if (e.id == plain && e.mount_point == m.path) (*present)[i] = true;
    }
  }
  return true;
}

}  // namespace kata
