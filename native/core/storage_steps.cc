#include "storage_steps.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <map>

#include "beneath.h"
#include "dir.h"
#include "fault.h"
#include "fd.h"
#include "fsgroup.h"
#include "mountinfo.h"
#include "tree.h"

namespace kata {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// The ephemeral fsgid= step: the mount root's group and setgid bit (Kata's ephemeral handler).
bool SetFsGid(const std::string& path, int64_t gid, SysError* error) {
  if (chown(path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(gid)) != 0) {
    error->Set(errno, "chown", path);
    return false;
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    error->Set(errno, "stat", path);
    return false;
  }
  if (chmod(path.c_str(), (st.st_mode & 07777) | S_ISGID) != 0) {
    error->Set(errno, "chmod", path);
    return false;
  }
  return true;
}

// Kata's local handler: the directory's group (fsgid=), its mode (mode=, with setgid when fsgid=
// was given), then fsGroup; there is no mount, so nothing is skipped as read-only.
bool LocalOwnership(const StorageJob& job, const std::string& target, SysError* error) {
  if (job.fsgid >= 0 &&
      chown(target.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(job.fsgid)) != 0) {
    error->Set(errno, "chown", target);
    return false;
  }
  const mode_t mode = static_cast<mode_t>(job.mode) | (job.fsgid >= 0 ? S_ISGID : 0);
  if (job.mode >= 0 && chmod(target.c_str(), mode) != 0) {
    error->Set(errno, "chmod", target);
    return false;
  }
  FsGroupResult r;
  return job.fs_group < 0 ||
         ApplyFsGroup(target, static_cast<unsigned>(job.fs_group), job.fs_group_read_only,
                      job.fs_group_on_root_mismatch, &r, error);
}

bool Ownership(const StorageJob& job, const std::string& target, StorageOutcome* out,
               SysError* error) {
  if (job.directory_only) return LocalOwnership(job, target, error);
  if (job.fs_group < 0 && job.fsgid < 0) return true;
  struct statvfs vfs;
  if (statvfs(target.c_str(), &vfs) != 0) {
    error->Set(errno, "statvfs", target);
    return false;
  }
  if (vfs.f_flag & ST_RDONLY) {
    out->ownership_skipped = true;
    return true;
  }
  if (job.fs_group >= 0) {
    FsGroupResult r;
    if (!ApplyFsGroup(target, static_cast<unsigned>(job.fs_group), job.fs_group_read_only,
                      job.fs_group_on_root_mismatch, &r, error)) {
      return false;
    }
  }
  // After fsGroup, as the ephemeral handler does it: the root's group is fsgid's in the end.
  return job.fsgid < 0 || SetFsGid(target, job.fsgid, error);
}

// The directory holding the last mount point made, kept open for the request: the next mount
// point in the same directory (a request's storages mostly share one) is created from it, instead
// of walking and reopening every component above it again. It was reached component by
// component without following a symlink, as a new walk from the root would reach it.
struct OpenParent {
  std::string path;
  Fd fd;
};

// Where a mount point's creation starts: a directory already reached without following a
// symlink (the allowed root, or as far as the check's walk got), its path, and the rest of the
// mount point below it (at least its last component: the check never opens that one).
struct WalkStart {
  int fd;
  std::string path;
  std::string rel;
};

// True when `path` is `target` or lies beneath it: a mount at `target` hides it.
bool Beneath(const std::string& path, const std::string& target) {
  return path == target || (path.size() > target.size() && path[target.size()] == '/' &&
                            path.compare(0, target.size(), target) == 0);
}

// MakeBeneathAt for the mount point `from` leads to, from `parent` when the point lies directly in
// it; otherwise its directory is walked to (created if missing) from `from` first and becomes
// `parent`. What either step creates is appended to `created`, in order.
bool MakeMountPoint(const WalkStart& from, const MountPointSteps& point, OpenParent* parent,
                    std::vector<std::string>* created, SysError* error, Fd* leaf) {
  const size_t slash = from.rel.rfind('/');
  std::vector<std::string> made;  // MakeBeneathAt's own list, appended to `created`
  if (slash == std::string::npos) {
    const bool ok = MakeBeneathAt(from.fd, from.path, from.rel, point.mode, point.leaf_file, &made,
                                  error, leaf);
    created->insert(created->end(), made.begin(), made.end());
    return ok;
  }
  const std::string dir = from.rel.substr(0, slash);
  const std::string dir_path = Join(from.path, dir);
  if (!parent->fd.ok() || parent->path != dir_path) {
    parent->fd.reset();
    const bool ok =
        MakeBeneathAt(from.fd, from.path, dir, point.mode, false, &made, error, &parent->fd);
    created->insert(created->end(), made.begin(), made.end());
    if (!ok) return false;
    parent->path = dir_path;
  }
  const bool ok = MakeBeneathAt(parent->fd.get(), dir_path, from.rel.substr(slash + 1), point.mode,
                                point.leaf_file, &made, error, leaf);
  created->insert(created->end(), made.begin(), made.end());
  return ok;
}

// `rel` without its first `depth` components.
std::string After(const std::string& rel, size_t depth) {
  size_t at = 0;
  for (size_t k = 0; k < depth; ++k) at = rel.find('/', at) + 1;
  return rel.substr(at);
}

// Undoes `undo` newest first; what could not be undone stays in it.
void Undo(UndoLog* undo, std::vector<SysError>* errors) {
  UmountOptions plain;
  while (!undo->mounted.empty()) {
    SysError e;
    std::vector<UnmountStep> steps;
    if (!ReleaseMount(undo->mounted.back(), plain, &steps, &e)) {
      errors->push_back(std::move(e));
      return;  // a mount still there: nothing below it may be removed
    }
    undo->unmounted.push_back(std::move(undo->mounted.back()));
    undo->mounted.pop_back();
  }
  std::vector<std::string> kept;
  while (!undo->created.empty()) {
    SysError e;
    if (!RemoveEntry(undo->created.back(), &e) && e.err != ENOENT) {
      kept.insert(kept.begin(), undo->created.back());
      errors->push_back(std::move(e));
    }
    undo->created.pop_back();
  }
  undo->created = std::move(kept);
}

}  // namespace

bool MemoryOnly(std::string_view fstype) { return fstype == "tmpfs" || fstype == "ramfs"; }

namespace {

// Kata's guest pre-mount of the shared filesystem: the mount point is already the root of a mount
// of this source and type (the topmost at its path, as mountinfo lists them). It is accepted as it
// is: nothing is mounted or recorded, so no release of ours ever unmounts it.
bool Premounted(int leaf, const std::string& target, const StorageJob& job, bool* premounted,
                SysError* error) {
  *premounted = false;
  bool root = false;
  if (!IsMountPoint(leaf, &root, error)) {
    error->path = target;
    return false;
  }
  // A directory that is no mount's root (the usual case) needs no look at the table.
  if (!root) return true;
  std::vector<MountinfoEntry> table;
  if (!ReadMountinfo(&table, error)) return false;
  const MountinfoEntry* top = nullptr;
  for (const MountinfoEntry& e : table) {
    if (e.mount_point == target) top = &e;
  }
  *premounted = top != nullptr && top->source == job.source && top->fstype == job.fstype;
  return true;
}

// A node that is not a block device would make the mount fail with ENOTBLK after the mount point
// was made; saying so first, by name, changes nothing.
bool IsBlockNode(const std::string& source, SysError* error) {
  struct stat st;
  if (stat(source.c_str(), &st) != 0) {
    error->Set(errno, "stat", source);
    return false;
  }
  if (S_ISBLK(st.st_mode)) return true;
  error->Set("ERR_NOT_BLOCK_DEVICE", source, {}, ENOTBLK, "stat");
  return false;
}

}  // namespace

bool CannotBlock(const std::vector<StorageJob>& jobs) {
  if (jobs.size() > kMaxStoragesHere) return false;
  for (const StorageJob& job : jobs) {
    if (!MemoryOnly(job.fstype) || (job.options.flags & (MS_BIND | MS_MOVE | MS_REMOUNT)) ||
        job.point.leaf_file || job.source_block) {
      return false;
    }
  }
  return true;
}

bool ApplyStorages(const std::vector<StorageJob>& jobs, std::vector<StorageOutcome>* outcomes,
                   size_t* failed, SysError* error, std::vector<SysError>* undo_errors,
                   StorageRefusal* refusal) {
  outcomes->assign(jobs.size(), StorageOutcome());
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].source_block && !IsBlockNode(jobs[i].source, error)) {
      *failed = i;
      return false;
    }
  }
  // Each allowed root is opened once for the request (most requests have one).
  std::map<std::string, Fd> roots;
  auto root_fd = [&](const std::string& root, bool create) -> int {
    auto it = roots.find(root);
    if (it != roots.end() && it->second.ok()) return it->second.get();
    Fd fd;
    if (create) {
      fd = OpenRoot(root, error);
    } else {
      fd.reset(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fd.ok() && errno != ENOENT) error->Set(errno, "open", root);
    }
    const int got = fd.get();
    roots[root] = std::move(fd);
    return got;
  };
  // Many mount points in one root: its entries are read once (ReadRootListing).
  constexpr size_t kReadDirFrom = 8;
  std::map<std::string, size_t> per_root;
  for (const StorageJob& job : jobs) ++per_root[job.point.root];
  std::map<std::string, RootListing> listed;
  // Where each check's walk got, for the creation to go on from (a descriptor each, so only for
  // requests of a usual size; a larger one walks again).
  constexpr size_t kKeepReachedUpTo = 64;
  std::vector<BeneathReach> reached(jobs.size() <= kKeepReachedUpTo ? jobs.size() : 0);
  for (size_t i = 0; i < jobs.size(); ++i) {
    const MountPointSteps& p = jobs[i].point;
    const int fd = root_fd(p.root, false);
    // A root not there yet holds nothing that could redirect the path.
    if (fd < 0 && !*error) continue;
    const RootListing* listing = nullptr;
    if (fd >= 0 && per_root[p.root] >= kReadDirFrom) {
      auto it = listed.find(p.root);
      if (it == listed.end()) it = listed.emplace(p.root, ReadRootListing(fd)).first;
      listing = &it->second;
    }
    if ((fd < 0 || !CheckBeneathAt(fd, p.root, p.rel, &refusal->stop, &refusal->path, error,
                                   listing, i < reached.size() ? &reached[i] : nullptr)) ||
        refusal->stop != BeneathError::kNone) {
      *failed = i;
      return false;
    }
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    for (const MountPointSteps& d : jobs[i].dirs) {
      const int fd = root_fd(d.root, false);
      if (fd < 0 && !*error) continue;
      if (fd < 0 ||
          !CheckBeneathAt(fd, d.root, d.rel, &refusal->stop, &refusal->path, error, nullptr,
                          nullptr) ||
          refusal->stop != BeneathError::kNone) {
        *failed = i;
        return false;
      }
    }
  }
  OpenParent parent;
  std::vector<std::string> targets;  // this job's mounts so far, which may hide a reached directory
  for (size_t i = 0; i < jobs.size(); ++i) {
    const StorageJob& job = jobs[i];
    StorageOutcome& out = (*outcomes)[i];
    const uint64_t t0 = NowNs();
    const int fd = root_fd(job.point.root, true);
    bool ok = fd >= 0;
    if (ok) {
      Fd leaf;
      std::string target = Join(job.point.root, job.point.rel);
      WalkStart from{fd, job.point.root, job.point.rel};
      if (i < reached.size() && reached[i].dir.ok()) {
        // The check's walk got this far over directories that exist: go on from there, unless a
        // mount this job made since covers them (the walk must then cross into it).
        const std::string rest = After(job.point.rel, reached[i].depth);
        const std::string path =
            Join(job.point.root, job.point.rel.substr(0, job.point.rel.size() - rest.size() - 1));
        bool hidden = false;
        for (const std::string& t : targets) hidden = hidden || Beneath(path, t);
        if (!hidden) from = WalkStart{reached[i].dir.get(), path, rest};
      }
      for (size_t k = 0; ok && k < job.dirs.size(); ++k) {
        const MountPointSteps& d = job.dirs[k];
        const int dir_root = root_fd(d.root, true);
        Fd made_dir;
        ok = dir_root >= 0 && MakeMountPoint(WalkStart{dir_root, d.root, d.rel}, d, &parent,
                                             &out.undo.created, error, &made_dir);
      }
      if (ok) ok = MakeMountPoint(from, job.point, &parent, &out.undo.created, error, &leaf);
      bool premounted = false;
      if (ok && job.accept_premount) ok = Premounted(leaf.get(), target, job, &premounted, error);
      const bool mounts = !premounted && !job.directory_only;
      MountRef made;
      if (ok && mounts) {
        MountRequest request;
        // The API the job asked for, under auto the new one: its mount fd gives the mount's
        // identity (release.h) in one statx. mount(2) onto the fd's /proc path is one call
        // instead of about five, but its identity has to be checked against mountinfo, a read of
        // the whole table per mount that cost more than the calls saved (measured against the Go
        // agent: 208 against 117 µs per storage at 100 per request).
        request.api = job.api;
        request.mount_id = &made.id;
        request.beneath = job.point.root.c_str();
        request.target_fd = leaf.get();
        const char* fstype = job.fstype.empty() ? nullptr : job.fstype.c_str();
        ok = Mount(job.source.c_str(), target.c_str(), fstype, job.options, error, request);
      }
      if (ok && mounts && parent.fd.ok() && Beneath(parent.path, target)) {
        // A mount on the kept directory, or above it, hides it: later mount points there must
        // be walked to again, onto the new mount.
        parent.fd.reset();
      }
      if (ok && mounts) {
        targets.push_back(target);
        made.path = target;
        out.undo.mounted.push_back(std::move(made));
        CrashPoint();
      }
      if (ok) ok = Ownership(job, target, &out, error);
    }
    out.duration_ns = NowNs() - t0;
    if (ok) continue;
    *failed = i;
    for (size_t k = i + 1; k-- > 0;) Undo(&(*outcomes)[k].undo, undo_errors);
    return false;
  }
  return true;
}

}  // namespace kata
