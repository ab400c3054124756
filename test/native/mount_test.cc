// The mount core against the real kernel, in a mount namespace of the test's own. Runs natively,
// under qemu for the other architectures, and under ASan/UBSan.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "check.h"
#include "mount.h"
#include "mountinfo.h"
#include "newmount.h"
#include "options.h"
#include "scratch.h"
#include "storage_steps.h"
#include "workpool.h"

namespace {

bool InMountinfo(const std::string& target, const std::string& needle) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + target + " ") != std::string::npos &&
        line.find(needle) != std::string::npos)
      return true;
  }
  return false;
}

// Releases what a job's outcomes hold, newest first as the Sandbox gives storages back; with
// `clean`, every release must have unmounted and removed everything.
void ReleaseNewestFirst(const std::vector<kata::StorageOutcome>& outcomes, bool clean) {
  std::vector<kata::StorageRelease> releases;
  for (size_t i = outcomes.size(); i-- > 0;)
    releases.push_back({outcomes[i].undo.mounted, outcomes[i].undo.created, {}});
  std::vector<kata::ReleaseOutcome> released;
  kata::ReleaseStorages(releases, kata::UmountOptions{}, &released);
  for (const kata::ReleaseOutcome& r : released) {
    if (!clean) continue;
    CHECK(!r.error);
    CHECK(r.leftovers.empty());
  }
}

kata::MountOptions Parse(const std::string& list) {
  kata::MountOptions o;
  CHECK(kata::ParseMountOptions(list, &o, nullptr) == kata::OptionError::kNone);
  return o;
}

// One ApplyStorages call and everything it reports.
struct Applied {
  bool ok = false;
  std::vector<kata::StorageOutcome> outcomes;
  std::vector<kata::SysError> undo_errors;
  kata::StorageRefusal refusal;
  size_t failed = 99;
  kata::SysError err;
};

Applied Apply(const std::vector<kata::StorageJob>& jobs) {
  Applied a;
  a.ok = kata::ApplyStorages(jobs, &a.outcomes, &a.failed, &a.err, &a.undo_errors, &a.refusal);
  return a;
}

// A storage job beneath `root` at `rel`, mounting a tmpfs through mount(2).
kata::StorageJob TmpfsJob(const std::string& root, const std::string& rel) {
  kata::StorageJob j;
  j.point.root = root;
  j.point.rel = rel;
  j.source = "tmpfs";
  j.fstype = "tmpfs";
  j.api = kata::MountApi::kLegacy;
  return j;
}

}  // namespace

KATA_TEST(mount_tmpfs_and_umount) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string dir = kata_test::TempDir("core");
  kata::SysError err;
  CHECK(kata::Mount("tmpfs", dir.c_str(), "tmpfs", Parse("nodev,size=64k,mode=700"), &err));
  CHECK(InMountinfo(dir, "nodev"));
  CHECK(InMountinfo(dir, "size=64k"));
  bool is_mount = false;
  CHECK(kata::IsMountPoint(dir.c_str(), &is_mount, &err) && is_mount);
  CHECK(kata::Umount(dir.c_str(), kata::UmountOptions{}, &err));
  CHECK(!InMountinfo(dir, "tmpfs"));
  CHECK(kata::IsMountPoint(dir.c_str(), &is_mount, &err) && !is_mount);
  rmdir(dir.c_str());
}

KATA_TEST(bind_ro_is_read_only) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string dir = kata_test::TempDir("core");
  const std::string src = dir + "/src", dst = dir + "/dst";
  mkdir(src.c_str(), 0755);
  mkdir(dst.c_str(), 0755);
  kata::SysError err;
  CHECK(kata::Mount(src.c_str(), dst.c_str(), nullptr, Parse(std::string("bind\0ro", 7)), &err));
  const int fd = open((dst + "/f").c_str(), O_CREAT | O_WRONLY, 0644);
  CHECK(fd < 0 && errno == EROFS);
  if (fd >= 0) close(fd);
  CHECK(kata::Umount(dst.c_str(), kata::UmountOptions{}, &err));
  rmdir(dst.c_str());
  rmdir(src.c_str());
  rmdir(dir.c_str());
}

KATA_TEST(mount_errors_carry_errno_and_paths) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  kata::SysError err;
  CHECK(!kata::Mount("tmpfs", "/nonexistent/kata", "tmpfs", kata::MountOptions{}, &err));
  CHECK_EQ(err.err, ENOENT);
  // The call that failed: attaching, which is move_mount(2) when auto picked the new API.
  const bool new_api =
      kata::EffectiveMountApi(kata::MountApi::kAuto, kata::MountOptions{}) == kata::MountApi::kNew;
  CHECK_EQ(std::string(err.syscall), std::string(new_api ? "move_mount" : "mount"));
  CHECK_EQ(err.dest, std::string("/nonexistent/kata"));
  kata::SysError legacy;
  kata::MountRequest req;
  req.api = kata::MountApi::kLegacy;
  CHECK(!kata::Mount("tmpfs", "/nonexistent/kata", "tmpfs", kata::MountOptions{}, &legacy, req));
  CHECK_EQ(legacy.err, ENOENT);
  CHECK_EQ(std::string(legacy.syscall), std::string("mount"));
  kata::SysError err2;
  CHECK(!kata::Umount("/nonexistent/kata", kata::UmountOptions{}, &err2));
  CHECK_EQ(err2.err, ENOENT);
  CHECK_EQ(std::string(err2.syscall), std::string("umount2"));
}

KATA_TEST(busy_umount_retries_until_released) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string dir = kata_test::TempDir("core");
  kata::SysError err;
  CHECK(kata::Mount("tmpfs", dir.c_str(), "tmpfs", Parse("size=16k"), &err));
  const int fd = open((dir + "/held").c_str(), O_CREAT | O_WRONLY, 0644);
  CHECK(fd >= 0);
  kata::UmountOptions quick;
  CHECK(!kata::Umount(dir.c_str(), quick, &err));
  CHECK_EQ(err.err, EBUSY);
  std::thread closer([fd] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    close(fd);
  });
  kata::UmountOptions patient;
  patient.busy_timeout_ms = 5000;
  kata::SysError err2;
  CHECK(kata::Umount(dir.c_str(), patient, &err2));
  closer.join();
  rmdir(dir.c_str());
}

KATA_TEST(workpool_runs_jobs_past_a_blocked_one) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> done{0};
  kata::SubmitBlocking([&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
    done++;
  });
  for (int i = 0; i < 50; i++) kata::SubmitBlocking([&] { done++; });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done.load() < 50 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK_EQ(done.load(), 50);  // all but the blocked one, while it is still blocked
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  while (done.load() < 51 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK_EQ(done.load(), 51);
  CHECK(kata::BlockingPoolThreads() >= 2);
}

// A job submitted one at a time, each after the last finished and after a gap that lands it
// before, at and after the end of the idle thread's polling, and half of them from inside the
// last job's `then` (as the JS thread, woken by it, submits the next): none may be lost. A
// submit that skips the wake-up for a polling thread which has just stopped polling would leave
// its job queued with every thread asleep (until the 30 s idle exit): this test would time out.
KATA_TEST(workpool_polling_hand_off_loses_no_job) {
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  int submitted = 0;
  std::atomic<int> chained{0};
  const int gaps_us[] = {0, 5, 40, 90, 100, 110, 150, 400, 2000};
  auto signal = [&] {
    std::lock_guard<std::mutex> lock(mu);
    ++done;
    cv.notify_all();
  };
  for (int round = 0; round < 40; ++round) {
    for (int gap : gaps_us) {
      std::this_thread::sleep_for(std::chrono::microseconds(gap));
      if (round % 2 == 0) {
        kata::SubmitBlocking([] {}, signal);
        submitted += 1;
      } else {
        // The next job is submitted by the last one's `then`, before it signals.
        kata::SubmitBlocking([] {},
                             [&] {
                               kata::SubmitBlocking([&] { chained++; }, signal);
                               signal();
                             });
        submitted += 2;
      }
      std::unique_lock<std::mutex> lock(mu);
      CHECK(cv.wait_for(lock, std::chrono::seconds(5), [&] { return done == submitted; }));
      if (done != submitted) return;
    }
  }
  CHECK_EQ(done, submitted);
  CHECK_EQ(chained.load(), 20 * 9);
}

// After a burst of concurrent jobs the pool keeps several threads. A lone job must go to the
// thread that went idle last (warm, on the CPU it ran on), not to the one that slept longest: the
// old wake-up (one condition variable, whose waiters glibc wakes oldest first) rotated sequential
// jobs through every thread, and a one-storage Sandbox request took ~40 % longer after any burst.
// Each job is submitted with every thread asleep, so none polls and the pick is the pool's alone.
KATA_TEST(workpool_wakes_the_thread_that_went_idle_last) {
  // Shared with the jobs by value: a CHECK that times out returns while they may still run.
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    int running = 0;
    bool release = false;
    bool done = false;
    std::thread::id id;
  };
  auto st = std::make_shared<State>();
  const int burst = 4;
  for (int i = 0; i < burst; ++i) {
    kata::SubmitBlocking([st] {
      std::unique_lock<std::mutex> lock(st->mu);
      ++st->running;
      st->cv.notify_all();
      st->cv.wait(lock, [&] { return st->release; });
      --st->running;
      st->cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(st->mu);
    CHECK(st->cv.wait_for(lock, std::chrono::seconds(5), [&] { return st->running == burst; }));
    st->release = true;
    st->cv.notify_all();
    CHECK(st->cv.wait_for(lock, std::chrono::seconds(5), [&] { return st->running == 0; }));
    if (st->running != 0) return;
  }
  CHECK(kata::BlockingPoolThreads() >= burst);
  auto quiet = [] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (kata::BlockingPoolSleepers() != kata::BlockingPoolThreads()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  };
  auto run_one = [&](std::thread::id* id) {
    if (!quiet()) return false;
    {
      std::lock_guard<std::mutex> lock(st->mu);
      st->done = false;
    }
    kata::SubmitBlocking(
        [st] {
          std::lock_guard<std::mutex> lock(st->mu);
          st->id = std::this_thread::get_id();
        },
        [st] {
          std::lock_guard<std::mutex> lock(st->mu);
          st->done = true;
          st->cv.notify_all();
        });
    std::unique_lock<std::mutex> lock(st->mu);
    if (!st->cv.wait_for(lock, std::chrono::seconds(5), [&] { return st->done; })) return false;
    *id = st->id;
    return true;
  };
  std::thread::id last;
  CHECK(run_one(&last));
  int same = 0;
  for (int i = 0; i < 10; ++i) {
    std::thread::id id;
    CHECK(run_one(&id));
    if (id == last) ++same;
    last = id;
  }
  CHECK_EQ(same, 10);
}

// A request's storages in one job: the walks are checked before anything is made, a failure
// half-way is undone by the job itself, and the release gives back exactly what was recorded.
KATA_TEST(apply_and_release_storages_in_one_job) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string root = kata_test::TempDir("core");
  auto job = [&](const std::string& rel, const std::string& options) {
    kata::StorageJob j;
    j.point.root = root;
    j.point.rel = rel;
    j.source = "tmpfs";
    j.fstype = "tmpfs";
    j.options = Parse(options);
    j.api = kata::MountApi::kLegacy;
    return j;
  };
  std::vector<kata::StorageJob> jobs = {job("a", "size=64k"), job("b/c", "size=64k")};
  jobs[1].fsgid = 4242;
  std::vector<kata::StorageOutcome> outcomes;
  std::vector<kata::SysError> undo_errors;
  kata::StorageRefusal refusal;
  size_t failed = 99;
  kata::SysError err;
  CHECK(kata::ApplyStorages(jobs, &outcomes, &failed, &err, &undo_errors, &refusal));
  CHECK_EQ(outcomes.size(), size_t{2});
  CHECK(InMountinfo(root + "/a", "tmpfs"));
  CHECK(InMountinfo(root + "/b/c", "tmpfs"));
  CHECK_EQ(outcomes[1].undo.created.size(), size_t{2});  // b, then b/c
  struct stat st;
  CHECK(stat((root + "/b/c").c_str(), &st) == 0 && st.st_gid == 4242 && (st.st_mode & S_ISGID));

  ReleaseNewestFirst(outcomes, true);
  CHECK(!InMountinfo(root + "/a", "tmpfs"));
  CHECK(access((root + "/b").c_str(), F_OK) != 0);

  // The third storage's options are refused by the kernel: the first two are undone.
  jobs.push_back(job("x/y", "size=zz"));
  outcomes.clear();
  err = kata::SysError();
  CHECK(!kata::ApplyStorages(jobs, &outcomes, &failed, &err, &undo_errors, &refusal));
  CHECK_EQ(failed, size_t{2});
  CHECK_EQ(err.err, EINVAL);
  CHECK(undo_errors.empty());
  for (const kata::StorageOutcome& o : outcomes)
    CHECK(o.undo.mounted.empty() && o.undo.created.empty());
  CHECK(!InMountinfo(root + "/a", "tmpfs"));
  CHECK(access((root + "/x").c_str(), F_OK) != 0);

  // A symlink on the way of the second storage: refused before the first is made.
  CHECK(symlink("/", (root + "/link").c_str()) == 0);
  std::vector<kata::StorageJob> linked = {job("first", "size=64k"), job("link/tmp", "size=64k")};
  err = kata::SysError();
  CHECK(!kata::ApplyStorages(linked, &outcomes, &failed, &err, &undo_errors, &refusal));
  CHECK_EQ(failed, size_t{1});
  CHECK(refusal.stop == kata::BeneathError::kSymlink);
  CHECK(refusal.path == root + "/link");
  CHECK(access((root + "/first").c_str(), F_OK) != 0);
  unlink((root + "/link").c_str());

  // Many mount points in one root: the first pass reads the root's entries once instead of
  // looking up each (ApplyStorages' DirTypes), and must refuse exactly what the walk refuses.
  CHECK(symlink("/", (root + "/link").c_str()) == 0);
  CHECK(mkdir((root + "/dir").c_str(), 0755) == 0);
  CHECK(symlink("/", (root + "/dir/inner").c_str()) == 0);
  const int file = open((root + "/file").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  CHECK(file >= 0);
  close(file);
  auto many = [&](const std::string& odd) {
    std::vector<kata::StorageJob> v;
    for (int i = 0; i < 10; ++i)
      v.push_back(job(i == 6 ? odd : "m" + std::to_string(i), "size=64k"));
    return v;
  };
  const struct {
    const char* rel;
    kata::BeneathError stop;
    const char* bad;
  } cases[] = {
      {"link", kata::BeneathError::kSymlink, "/link"},              // the leaf itself
      {"link/x", kata::BeneathError::kSymlink, "/link"},            // on the way
      {"file/x", kata::BeneathError::kNotDir, "/file"},             // a file on the way
      {"dir/inner/x", kata::BeneathError::kSymlink, "/dir/inner"},  // below a listed directory
  };
  for (const auto& c : cases) {
    std::vector<kata::StorageJob> v = many(c.rel);
    refusal = kata::StorageRefusal();
    err = kata::SysError();
    CHECK(!kata::ApplyStorages(v, &outcomes, &failed, &err, &undo_errors, &refusal));
    CHECK_EQ(failed, size_t{6});
    CHECK(refusal.stop == c.stop);
    CHECK(refusal.path == root + c.bad);
    CHECK(access((root + "/m0").c_str(), F_OK) != 0);  // nothing was made
  }
  // An existing file as a mount point is no refusal; absent names pass the first pass.
  std::vector<kata::StorageJob> fine = many("dir/new");
  refusal = kata::StorageRefusal();
  CHECK(kata::ApplyStorages(fine, &outcomes, &failed, &err, &undo_errors, &refusal));
  CHECK(InMountinfo(root + "/dir/new", "tmpfs"));
  ReleaseNewestFirst(outcomes, false);
  CHECK(!InMountinfo(root + "/m0", "tmpfs"));
  unlink((root + "/dir/inner").c_str());
  rmdir((root + "/dir").c_str());
  unlink((root + "/file").c_str());
  unlink((root + "/link").c_str());
  rmdir(root.c_str());
}

// Every mount a job makes comes back with its mount ID, whichever way it was mounted: through the
// new API from its mount fd, through mount(2) from the target reopened and checked, mount points in
// one directory are made from the kept parent fd, and a mount point beneath a mount of the same
// request is walked to again onto it. Release goes by that ID, so an unknown (0) or wrong one
// would break it: each must be the ID statx gives for the mount at its path.
// mountinfo's type and source follow the optional fields' "-" separator, however many optional
// fields there are; escapes are undone; a line without the separator has neither.
KATA_TEST(parse_mountinfo_reads_type_and_source_after_the_separator) {
  std::vector<kata::MountinfoEntry> e;
  kata::ParseMountinfo(
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
      "35 22 0:30 / /run/kata\\040shared rw shared:12 master:3 - virtiofs kata\\134Shared rw\n"
      "40 35 0:31 / /x rw - tmpfs tmpfs rw,size=64k\n"
      "41 40 0:32 / /y rw - tmpfs\n"
      "42 41\n",
      &e);
  CHECK_EQ(e.size(), size_t{4});
  CHECK(e[0].id == 22 && e[0].parent == 1 && e[0].mount_point == "/");
  CHECK(e[0].fstype == "ext4" && e[0].source == "/dev/vda1");
  CHECK(e[1].mount_point == "/run/kata shared");
  CHECK(e[1].fstype == "virtiofs" && e[1].source == "kata\\Shared");
  CHECK(e[2].fstype == "tmpfs" && e[2].source == "tmpfs");
  CHECK(e[3].fstype.empty() && e[3].source.empty());  // cut short after the separator
}

// Kata's guest pre-mount of the shared filesystem: a job step that accepts it leaves that mount
// as it is and records nothing; under another source it mounts on top as asked.
KATA_TEST(apply_storages_accepts_a_premount_of_the_same_source_and_type) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string root = kata_test::TempDir("core");
  const std::string shared = root + "/shared";
  CHECK(mkdir(shared.c_str(), 0755) == 0);
  CHECK(mount("kataShared", shared.c_str(), "tmpfs", 0, "size=64k") == 0);
  auto job = [&](const std::string& source) {
    kata::StorageJob j = TmpfsJob(root, "shared");
    j.source = source;
    j.accept_premount = true;
    return j;
  };
  auto count = [&]() {
    std::vector<kata::MountinfoEntry> table;
    kata::SysError ignored;
    CHECK(kata::ReadMountinfo(&table, &ignored));
    size_t n = 0;
    for (const kata::MountinfoEntry& m : table) n += m.mount_point == shared;
    return n;
  };
  Applied a = Apply({job("kataShared")});
  CHECK(a.ok);
  CHECK(a.outcomes[0].undo.mounted.empty() && a.outcomes[0].undo.created.empty());
  CHECK_EQ(count(), size_t{1});

  a = Apply({job("otherShare")});
  CHECK(a.ok);
  CHECK_EQ(a.outcomes[0].undo.mounted.size(), size_t{1});
  CHECK_EQ(count(), size_t{2});
  ReleaseNewestFirst(a.outcomes, false);
  CHECK_EQ(count(), size_t{1});
  CHECK(umount2(shared.c_str(), 0) == 0);
  CHECK(rmdir(shared.c_str()) == 0);
  CHECK(rmdir(root.c_str()) == 0);
}

// The directories a storage asks for (overlayfs's upperdir and workdir) are made before its mount
// point, recorded in order with it, and undone with it when the job fails.
KATA_TEST(apply_storages_makes_the_directories_a_storage_asks_for) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string root = kata_test::TempDir("core");
  kata::StorageJob j = TmpfsJob(root, "m");
  j.dirs = {{root, "up", 0755, false}, {root, "w/work", 0755, false}};
  Applied a = Apply({j});
  CHECK(a.ok);
  const std::vector<std::string> want = {root + "/up", root + "/w", root + "/w/work", root + "/m"};
  CHECK(a.outcomes[0].undo.created == want);
  ReleaseNewestFirst(a.outcomes, true);
  CHECK(access((root + "/up").c_str(), F_OK) != 0 && access((root + "/w").c_str(), F_OK) != 0);

  // The mount fails: the directories made for it are undone too.
  j.options = Parse("size=zz");
  a = Apply({j});
  CHECK(!a.ok);
  CHECK(a.outcomes[0].undo.created.empty());
  CHECK(access((root + "/up").c_str(), F_OK) != 0 && access((root + "/m").c_str(), F_OK) != 0);

  // A symlink on a directory's way refuses the storage before anything is made.
  CHECK(symlink("/", (root + "/link").c_str()) == 0);
  j.options = Parse("size=64k");
  j.dirs = {{root, "up", 0755, false}, {root, "link/work", 0755, false}};
  a = Apply({j});
  CHECK(!a.ok);
  CHECK(a.refusal.stop == kata::BeneathError::kSymlink && a.refusal.path == root + "/link");
  CHECK(access((root + "/up").c_str(), F_OK) != 0);
  CHECK(unlink((root + "/link").c_str()) == 0);
  CHECK(rmdir(root.c_str()) == 0);
}

// Kata's local storage: a directory with the local handler's group and mode, nothing mounted.
KATA_TEST(apply_storages_makes_a_local_directory_without_a_mount) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string root = kata_test::TempDir("core");
  kata::StorageJob j = TmpfsJob(root, "d/local");
  j.directory_only = true;
  j.fsgid = 4242;
  j.mode = 0750;
  const Applied a = Apply({j});
  CHECK(a.ok);
  CHECK(a.outcomes[0].undo.mounted.empty());
  CHECK_EQ(a.outcomes[0].undo.created.size(), size_t{2});
  CHECK(!InMountinfo(root + "/d/local", ""));
  struct stat st;
  CHECK(stat((root + "/d/local").c_str(), &st) == 0);
  CHECK_EQ(st.st_mode & 07777, static_cast<mode_t>(02750));
  CHECK_EQ(st.st_gid, static_cast<gid_t>(4242));
  ReleaseNewestFirst(a.outcomes, true);
  CHECK(rmdir(root.c_str()) == 0);
}

// A disk's node is checked before anything is touched: a missing node or one that is not a
// block device stops the request at that storage, with the storages before it not made.
KATA_TEST(apply_storages_checks_block_sources_first) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string root = kata_test::TempDir("core");
  for (const char* node : {"/dev/null", "/", "/dev/kata-storage-no-such-node"}) {
    kata::StorageJob disk = TmpfsJob(root, "disk");
    disk.source = node;
    disk.source_block = true;
    disk.fstype = "ext4";
    const Applied a = Apply({TmpfsJob(root, "first"), disk});
    const kata::SysError& err = a.err;
    CHECK(!a.ok);
    CHECK_EQ(a.failed, size_t{1});
    CHECK(err.syscall == std::string("stat"));
    if (std::string(node) == "/dev/kata-storage-no-such-node") {
      CHECK(err.code == nullptr);
      CHECK_EQ(err.err, ENOENT);
      CHECK(err.path == node);
    } else {
      CHECK(err.code == std::string("ERR_NOT_BLOCK_DEVICE"));
      CHECK_EQ(err.err, ENOTBLK);
      CHECK(err.value == node);
    }
    CHECK(a.refusal.stop == kata::BeneathError::kNone);
    CHECK(access((root + "/first").c_str(), F_OK) != 0);
    CHECK(access((root + "/disk").c_str(), F_OK) != 0);
  }
  CHECK(rmdir(root.c_str()) == 0);
}

KATA_TEST(apply_storages_records_each_mount_id_on_every_path) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string root = kata_test::TempDir("core");
  for (const kata::MountApi api :
       {kata::MountApi::kAuto, kata::MountApi::kLegacy, kata::MountApi::kNew}) {
    if (api == kata::MountApi::kNew && !kata::ProbeNewMountApi().Complete()) continue;
    std::vector<kata::StorageJob> jobs;
    for (const char* rel : {"d/a", "d/b", "e", "e/f", "e/f/g", "d/c"}) {
      kata::StorageJob j;
      j.point.root = root;
      j.point.rel = rel;
      j.source = "tmpfs";
      j.fstype = "tmpfs";
      j.options = Parse("size=64k");
      j.api = api;
      jobs.push_back(std::move(j));
    }
    std::vector<kata::StorageOutcome> outcomes;
    std::vector<kata::SysError> undo_errors;
    kata::StorageRefusal refusal;
    size_t failed = 99;
    kata::SysError err;
    CHECK(kata::ApplyStorages(jobs, &outcomes, &failed, &err, &undo_errors, &refusal));
    CHECK_EQ(outcomes.size(), jobs.size());
    for (size_t i = 0; i < outcomes.size(); ++i) {
      CHECK_EQ(outcomes[i].undo.mounted.size(), size_t{1});
      const kata::MountRef& m = outcomes[i].undo.mounted[0];
      CHECK(m.path == root + "/" + jobs[i].point.rel);
      CHECK(InMountinfo(m.path, "tmpfs"));
      uint64_t seen = 0;
      kata::SysError e;
      CHECK(kata::MountIdAt(m.path, &seen, &e));
      CHECK(m.id != 0);
      CHECK_EQ(m.id, seen);
    }
    ReleaseNewestFirst(outcomes, true);
    CHECK(!InMountinfo(root + "/d/a", "tmpfs"));
    CHECK(!InMountinfo(root + "/e", "tmpfs"));
    CHECK(access((root + "/d").c_str(), F_OK) != 0);
    CHECK(access((root + "/e").c_str(), F_OK) != 0);
  }
  rmdir(root.c_str());
}

// An overlay of 200 layers under a directory long enough that their absolute paths take four
// pages: mount(2) gets them relative to that directory from a thread with a working directory of
// its own, the new API one by one ("lowerdir+"). Every layer is visible, the top one wins, and
// the process's working directory never moves.
KATA_TEST(overlay_of_many_layers_on_both_apis) {
  if (const char* why = kata_test::EnterPrivateNamespace()) KATA_SKIP(why);
  const std::string dir = kata_test::TempDir("core");
  const std::string parent = dir + "/" + std::string(64, 'c') + "/multi-layer";
  CHECK(system(("mkdir -p " + parent).c_str()) == 0);
  constexpr int kLayers = 200;
  std::string lowerdir = "lowerdir=";
  for (int i = 0; i < kLayers; ++i) {
    const std::string layer = parent + "/lower-" + std::to_string(i);
    mkdir(layer.c_str(), 0755);
    std::ofstream(layer + "/f" + std::to_string(i)) << i;
    std::ofstream(layer + "/top") << i;
    lowerdir += (i ? ":" : "") + layer;
  }
  CHECK(lowerdir.size() > 4 * kata::MaxMountDataLength());
  const std::string target = dir + "/rootfs";
  mkdir(target.c_str(), 0755);
  char before[4096];
  CHECK(getcwd(before, sizeof(before)) != nullptr);
  const bool new_api = kata::ProbeNewMountApi().Complete() && kata::OverlayTakesLayersOneByOne();
  for (kata::MountApi api : {kata::MountApi::kLegacy, kata::MountApi::kNew}) {
    if (api == kata::MountApi::kNew && !new_api) continue;  // the legacy run still counts
    kata::MountRequest req;
    req.api = api;
    kata::SysError err;
    CHECK(kata::Mount("overlay", target.c_str(), "overlay", Parse(lowerdir), &err, req));
    CHECK(InMountinfo(target, api == kata::MountApi::kLegacy
                                  ? "lowerdir=lower-0:lower-1:"
                                  : "lowerdir+=" + parent + "/lower-0,"));
    std::string top;
    std::ifstream(target + "/top") >> top;
    CHECK_EQ(top, std::string("0"));
    for (int i = 0; i < kLayers; ++i) {
      CHECK(access((target + "/f" + std::to_string(i)).c_str(), F_OK) == 0);
    }
    char after[4096];
    CHECK(getcwd(after, sizeof(after)) != nullptr && std::string(after) == before);
    CHECK(kata::Umount(target.c_str(), kata::UmountOptions{}, &err));
    CHECK(!InMountinfo(target, "overlay"));
  }
  // Data that even compacted would not fit is never handed to mount(2), which would cut it.
  kata::MountOptions unparsed;
  unparsed.data = "lowerdir=/a/b:/c/d," + std::string(kata::MaxMountDataLength(), 'x');
  kata::MountRequest legacy;
  legacy.api = kata::MountApi::kLegacy;
  kata::SysError err;
  CHECK(!kata::Mount("overlay", target.c_str(), "overlay", unparsed, &err, legacy));
  CHECK_EQ(err.err, E2BIG);
  CHECK(system(("rm -rf " + dir).c_str()) == 0);
}
