// Release by mount identity (native/core/release.h): the ordering of a mount's descendants from a
// table, and against the real kernel, in a mount namespace of the test's own, each way a mount
// point's path can stop naming the recorded mount.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "check.h"
#include "mountinfo.h"
#include "release.h"
#include "scratch.h"
#include "storage_steps.h"

namespace {

// The mountinfo IDs of the mounts at `path`, bottom first.
std::vector<long> MountsAt(const std::string& path) {
  std::vector<kata::MountinfoEntry> table;
  kata::SysError e;
  std::vector<long> ids;
  if (!kata::ReadMountinfo(&table, &e)) return ids;
  for (const auto& m : table) {
    if (m.mount_point == path) ids.push_back(m.id);
  }
  return ids;
}

size_t MountsBelow(const std::string& dir) {
  std::vector<kata::MountinfoEntry> table;
  kata::SysError e;
  size_t n = 0;
  if (!kata::ReadMountinfo(&table, &e)) return 0;
  for (const auto& m : table) {
    if (m.mount_point == dir || m.mount_point.rfind(dir + "/", 0) == 0) ++n;
  }
  return n;
}

bool Tmpfs(const std::string& path) {
  return mount("tmpfs", path.c_str(), "tmpfs", 0, "size=64k") == 0;
}

// Each case runs with the kind of ID this kernel gives, and with each fallback an older kernel
// takes (plain statx IDs, mountinfo alone).
kata::MountIdKind g_kind = kata::MountIdKind::kPlain;

kata::MountRef Made(const std::string& path) {
  kata::MountRef m{path, 0};
  kata::SysError e;
  CHECK(kata::MountIdAt(path, g_kind, &m.id, &e));
  CHECK(m.id != 0);
  return m;
}

kata::MountinfoEntry Entry(long id, long parent, const char* at) {
  return {id, parent, at, "", ""};
}

}  // namespace

KATA_TEST(release_mount_ids_here_are_of_the_kind_probed) {
  // This machine's kernel decides which fallback production takes: say which, and check that
  // kind answers for "/" (mountinfo alone names only a mount at the path itself, which "/" is).
  const kata::MountIdKind kind = kata::MountIdKindHere();
  std::printf("# mount IDs here: %s\n", kind == kata::MountIdKind::kUnique  ? "unique"
                                        : kind == kata::MountIdKind::kPlain ? "plain"
                                                                            : "mountinfo");
  uint64_t id = 0;
  kata::SysError e;
  CHECK(kata::MountIdAt("/", &id, &e));
  CHECK(id != 0);
  // Plain IDs are mountinfo's own: the probe refuses a statx that answers otherwise (qemu-user
  // sets the mask bit without copying the field).
  uint64_t in_mountinfo = 0;
  CHECK(kata::MountIdAt("/", kata::MountIdKind::kNone, &in_mountinfo, &e));
  if (kind != kata::MountIdKind::kUnique) CHECK_EQ(id, in_mountinfo);
}

KATA_TEST(release_descendants_deepest_then_newest_first) {
  // 1 root; 10 ours at /p; 11 on /p/a; 12 stacked on /p; 13 on /p/a/b; 14 elsewhere; 15 on 14.
  const std::vector<kata::MountinfoEntry> table = {
      Entry(1, 1, "/"),        Entry(10, 1, "/p"), Entry(11, 10, "/p/a"), Entry(12, 10, "/p"),
      Entry(13, 11, "/p/a/b"), Entry(14, 1, "/q"), Entry(15, 14, "/q/x"),
  };
  const std::vector<size_t> order = kata::DescendantsChildrenFirst(table, 10);
  // 13 (depth 2), then 12 and 11 (depth 1, newest first); never 10 itself, 14 or 15.
  const std::vector<size_t> want = {4, 3, 2};
  CHECK(order == want);
  CHECK(kata::DescendantsChildrenFirst(table, 13).empty());
  CHECK(kata::DescendantsChildrenFirst(table, 99).empty());
}

KATA_TEST(release_descendants_ignore_broken_chains) {
  // A parent missing from the table (its mount gone between reads) and a self-parented loop end
  // the walk without reaching the mount.
  const std::vector<kata::MountinfoEntry> table = {Entry(1, 1, "/"), Entry(10, 1, "/p"),
                                                   Entry(20, 77, "/p/x"), Entry(21, 21, "/p/y")};
  CHECK(kata::DescendantsChildrenFirst(table, 10).empty());
}

static void release_mount_id_is_that_of_the_top_mount() {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string dir = kata_test::TempDir("release");
  // The mount holding /tmp (mountinfo alone names only a mount at the path itself).
  uint64_t under = 0;
  kata::SysError e;
  if (g_kind != kata::MountIdKind::kNone) CHECK(kata::MountIdAt(dir, g_kind, &under, &e));
  CHECK(Tmpfs(dir));
  const kata::MountRef ours = Made(dir);
  CHECK(ours.id != under);
  const kata::MountRef again = Made(dir);
  CHECK_EQ(again.id, ours.id);
  CHECK(umount2(dir.c_str(), 0) == 0);
  rmdir(dir.c_str());
}

static void release_fast_path_unmounts_the_recorded_mount() {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string dir = kata_test::TempDir("release");
  CHECK(Tmpfs(dir));
  const kata::MountRef ours = Made(dir);
  std::vector<kata::UnmountStep> steps;
  kata::SysError e;
  CHECK(kata::ReleaseMount(ours, kata::UmountOptions{}, g_kind, &steps, &e));
  CHECK(!e);
  CHECK_EQ(steps.size(), size_t{1});
  CHECK(steps.size() == 1 && steps[0].kind == kata::UnmountStep::Kind::kRecorded);
  CHECK(MountsAt(dir).empty());
  rmdir(dir.c_str());
}

static void release_counts_an_unmounted_or_detached_mount_as_released() {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string dir = kata_test::TempDir("release");
  const std::string a = dir + "/a", b = dir + "/b";
  mkdir(a.c_str(), 0755);
  mkdir(b.c_str(), 0755);
  CHECK(Tmpfs(a));
  CHECK(Tmpfs(b));
  const kata::MountRef ra = Made(a), rb = Made(b);
  CHECK(umount2(a.c_str(), 0) == 0);
  const int held = open((b + "/f").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  CHECK(held >= 0);
  CHECK(umount2(b.c_str(), MNT_DETACH) == 0);
  for (const kata::MountRef& r : {ra, rb}) {
    std::vector<kata::UnmountStep> steps;
    kata::SysError e;
    CHECK(kata::ReleaseMount(r, kata::UmountOptions{}, g_kind, &steps, &e));
    CHECK(steps.size() == 1 && steps[0].kind == kata::UnmountStep::Kind::kGone);
  }
  if (held >= 0) close(held);
  CHECK_EQ(MountsBelow(dir), size_t{0});
  rmdir(a.c_str());
  rmdir(b.c_str());
  rmdir(dir.c_str());
}

static void release_never_unmounts_another_mount_at_the_same_path() {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  // A plain ID is reused by the next mount (the kernel hands out the lowest free one): only a
  // unique ID tells a new mount at the same path from ours.
  if (g_kind != kata::MountIdKind::kUnique) KATA_SKIP("needs unique mount IDs (Linux 6.8)");
  const std::string dir = kata_test::TempDir("release");
  CHECK(Tmpfs(dir));
  const kata::MountRef ours = Made(dir);
  CHECK(umount2(dir.c_str(), 0) == 0);
  // Someone else's mount where ours was (plain IDs may even be reused for it).
  CHECK(Tmpfs(dir));
  const std::vector<long> before = MountsAt(dir);
  std::vector<kata::UnmountStep> steps;
  kata::SysError e;
  CHECK(kata::ReleaseMount(ours, kata::UmountOptions{}, g_kind, &steps, &e));
  CHECK(steps.size() == 1 && steps[0].kind == kata::UnmountStep::Kind::kGone);
  CHECK(MountsAt(dir) == before);
  CHECK(umount2(dir.c_str(), 0) == 0);
  rmdir(dir.c_str());
}

static void release_unmounts_what_is_stacked_on_and_beneath_the_mount() {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string dir = kata_test::TempDir("release");
  const std::string p = dir + "/p", other = dir + "/other";
  mkdir(p.c_str(), 0755);
  mkdir(other.c_str(), 0755);
  CHECK(Tmpfs(p));
  const kata::MountRef ours = Made(p);
  mkdir((p + "/sub").c_str(), 0755);
  CHECK(Tmpfs(p + "/sub"));  // beneath
  mkdir((p + "/sub/deeper").c_str(), 0755);
  CHECK(Tmpfs(p + "/sub/deeper"));
  CHECK(Tmpfs(p));      // stacked on it
  CHECK(Tmpfs(other));  // someone else's, elsewhere
  std::vector<kata::UnmountStep> steps;
  kata::SysError e;
  CHECK(kata::ReleaseMount(ours, kata::UmountOptions{}, g_kind, &steps, &e));
  CHECK(!e);
  CHECK_EQ(steps.size(), size_t{4});
  CHECK(!steps.empty() && steps.back().kind == kata::UnmountStep::Kind::kRecorded);
  for (size_t i = 0; i + 1 < steps.size(); ++i)
    CHECK(steps[i].kind == kata::UnmountStep::Kind::kDescendant && !steps[i].error);
  CHECK(MountsAt(p).empty());
  CHECK_EQ(MountsAt(other).size(), size_t{1});
  CHECK(umount2(other.c_str(), 0) == 0);
  rmdir(p.c_str());
  rmdir(other.c_str());
  rmdir(dir.c_str());
}

static void release_of_a_busy_mount_fails_and_keeps_it() {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string dir = kata_test::TempDir("release");
  CHECK(Tmpfs(dir));
  const kata::MountRef ours = Made(dir);
  const int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(chdir(dir.c_str()) == 0);
  std::vector<kata::UnmountStep> steps;
  kata::SysError e;
  kata::UmountOptions opts;
  opts.busy_timeout_ms = 20;
  CHECK(!kata::ReleaseMount(ours, opts, g_kind, &steps, &e));
  CHECK_EQ(e.err, EBUSY);
  CHECK_EQ(MountsAt(dir).size(), size_t{1});
  CHECK(fchdir(cwd) == 0);
  close(cwd);
  steps.clear();
  CHECK(kata::ReleaseMount(ours, opts, g_kind, &steps, &e));
  CHECK(MountsAt(dir).empty());
  rmdir(dir.c_str());
}

KATA_TEST(release_storage_removes_trees_and_entries_after_its_mounts) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  g_kind = kata::MountIdKindHere();  // ReleaseStorage reads IDs of this kind
  const std::string dir = kata_test::TempDir("release");
  const std::string point = dir + "/point", tree = dir + "/upper";
  mkdir(point.c_str(), 0755);
  mkdir(tree.c_str(), 0755);
  mkdir((tree + "/data").c_str(), 0755);
  close(open((tree + "/data/f").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  CHECK(Tmpfs(point));
  kata::StorageRelease r;
  r.mounted.push_back(Made(point));
  r.created = {tree, point};
  r.trees = {true, false};
  kata::ReleaseOutcome out;
  kata::ReleaseStorage(r, kata::UmountOptions{}, &out);
  CHECK(!out.error);
  CHECK_EQ(out.mounts_left, size_t{0});
  CHECK(out.leftovers.empty());
  struct stat st;
  CHECK(lstat(point.c_str(), &st) != 0 && errno == ENOENT);
  CHECK(lstat(tree.c_str(), &st) != 0 && errno == ENOENT);
  rmdir(dir.c_str());
}

// Each kernel case under each kind of mount ID.
#define KATA_RELEASE_KINDS(name)                             \
  KATA_TEST(name##_here) {                                   \
    g_kind = kata::MountIdKindHere();                        \
    name();                                                  \
  }                                                          \
  KATA_TEST(name##_plain_ids) {                              \
    if (kata::MountIdKindHere() == kata::MountIdKind::kNone) \
      KATA_SKIP("statx gives no mount IDs here");            \
    g_kind = kata::MountIdKind::kPlain;                      \
    name();                                                  \
  }                                                          \
  KATA_TEST(name##_mountinfo_only) {                         \
    g_kind = kata::MountIdKind::kNone;                       \
    name();                                                  \
  }

KATA_RELEASE_KINDS(release_mount_id_is_that_of_the_top_mount)
KATA_RELEASE_KINDS(release_fast_path_unmounts_the_recorded_mount)
KATA_RELEASE_KINDS(release_counts_an_unmounted_or_detached_mount_as_released)
KATA_RELEASE_KINDS(release_never_unmounts_another_mount_at_the_same_path)
KATA_RELEASE_KINDS(release_unmounts_what_is_stacked_on_and_beneath_the_mount)
KATA_RELEASE_KINDS(release_of_a_busy_mount_fails_and_keeps_it)

KATA_TEST(release_mount_records_the_id_of_the_mount_it_made) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string dir = kata_test::TempDir("release");
  const std::string point = dir + "/point";
  mkdir(point.c_str(), 0755);
  kata::MountOptions opts;
  CHECK(kata::ParseMountOptions("size=64k", &opts, nullptr) == kata::OptionError::kNone);
  for (const kata::MountApi api : {kata::MountApi::kAuto, kata::MountApi::kLegacy}) {
    for (const bool beneath : {false, true}) {
      uint64_t id = 0;
      kata::MountRequest request;
      request.api = api;
      request.mount_id = &id;
      if (beneath) request.beneath = dir.c_str();
      kata::SysError e;
      CHECK(kata::Mount("tmpfs", point.c_str(), "tmpfs", opts, &e, request));
      uint64_t seen = 0;
      CHECK(kata::MountIdAt(point, &seen, &e));
      CHECK(id != 0);
      CHECK_EQ(id, seen);
      CHECK(umount2(point.c_str(), 0) == 0);
    }
  }
  CHECK(MountsAt(point).empty());
  rmdir(point.c_str());
  rmdir(dir.c_str());
}

KATA_TEST(recorded_mounts_present_by_identity_and_path) {
  // What a restarted process asks of a journal's mounts: each is in place only as the same mount
  // at the same path; unmounted, replaced by another at the path, or moved elsewhere, it is not.
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string dir = kata_test::TempDir("present");
  const std::string a = dir + "/a", b = dir + "/b", c = dir + "/c";
  for (const std::string& p : {a, b, c}) mkdir(p.c_str(), 0755);
  CHECK(Tmpfs(a) && Tmpfs(b) && Tmpfs(c));
  kata::SysError e;
  uint64_t ida = 0, idb = 0, idc = 0;
  CHECK(kata::MountIdAt(a, &ida, &e) && kata::MountIdAt(b, &idb, &e) &&
        kata::MountIdAt(c, &idc, &e));
  std::vector<bool> present;
  CHECK(kata::RecordedMountsPresent({{a, ida}, {b, idb}, {c, idc}}, &present, &e));
  CHECK(present == std::vector<bool>({true, true, true}));
  // b unmounted and another tmpfs made there; c moved to d; a recorded under b's path.
  CHECK(umount2(b.c_str(), 0) == 0);
  CHECK(Tmpfs(b));
  const std::string d = dir + "/d";
  mkdir(d.c_str(), 0755);
  CHECK(mount(c.c_str(), d.c_str(), nullptr, MS_MOVE, nullptr) == 0);
  // The new mount at b is the old one only if it has its ID: never with unique IDs (Linux 6.8);
  // with plain ones (mountinfo's, and all qemu-user shows) the kernel hands a freed ID out again,
  // so a replacement at the same path can pass for the original there.
  uint64_t idb_now = 0;
  CHECK(kata::MountIdAt(b, &idb_now, &e));
  if (kata::MountIdKindHere() == kata::MountIdKind::kUnique) CHECK(idb_now != idb);
  CHECK(kata::RecordedMountsPresent({{a, ida}, {b, idb}, {c, idc}, {b, ida}}, &present, &e));
  CHECK(present == std::vector<bool>({true, idb_now == idb, false, false}));
  // Recorded without an ID: whatever is mounted at the path.
  CHECK(kata::RecordedMountsPresent({{b, 0}, {c, 0}}, &present, &e));
  CHECK(present == std::vector<bool>({true, false}));
  CHECK(kata::RecordedMountsPresent({}, &present, &e) && present.empty());
  for (const std::string& p : {a, b, d}) CHECK(umount2(p.c_str(), 0) == 0);
  CHECK(MountsBelow(dir) == 0);
  for (const std::string& p : {a, b, c, d}) rmdir(p.c_str());
  rmdir(dir.c_str());
}
