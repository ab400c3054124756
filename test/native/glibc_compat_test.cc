// The glibc-2.28 wrappers (native/core/glibc_compat.cc) must behave like what they replace: they
// carry every thread, condition-variable wait and exception of the addon. Compared against the
// real glibc calls (__real_*) where this glibc has them.
#if defined(KATA_GLIBC_COMPAT)

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "check.h"

extern "C" {
int __wrap_pthread_cond_clockwait(pthread_cond_t*, pthread_mutex_t*, clockid_t,
                                  const struct timespec*);
uint32_t __wrap_arc4random();
extern char __wrap___libc_single_threaded;
int __wrap_stat(const char*, struct stat*);
int __wrap_lstat(const char*, struct stat*);
int __wrap_fstat(int, struct stat*);
int __wrap_fstatat(int, const char*, struct stat*, int);
int __real_stat(const char*, struct stat*);
int __real_lstat(const char*, struct stat*);
int __real_fstat(int, struct stat*);
int __wrap_pthread_setname_np(pthread_t, const char*);
int __wrap_pthread_getname_np(pthread_t, char*, size_t);
int __real_pthread_getname_np(pthread_t, char*, size_t);
#if defined(DLFO_STRUCT_HAS_EH_DBASE)
int __wrap__dl_find_object(void*, struct dl_find_object*);
int __real__dl_find_object(void*, struct dl_find_object*);
#endif
}

namespace {

long long MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct timespec Deadline(clockid_t clock, long long fromNowNs) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  long long ns = ts.tv_nsec + fromNowNs;
  long long sec = ns / 1000000000LL;
  ns %= 1000000000LL;
  if (ns < 0) {
    ns += 1000000000LL;
    sec--;
  }
  ts.tv_sec += static_cast<time_t>(sec);
  ts.tv_nsec = static_cast<long>(ns);
  return ts;
}

[[gnu::noinline]] int Thrower(int depth) {
  if (depth == 0) throw std::runtime_error("unwound");
  return Thrower(depth - 1) + 1;
}

}  // namespace

KATA_TEST(compat_clockwait_monotonic_deadline_times_out_not_early) {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  pthread_mutex_lock(&mutex);
  const long long start = MonotonicNs();
  const struct timespec deadline = Deadline(CLOCK_MONOTONIC, 30 * 1000000LL);
  int rc;
  // Spurious wake-ups are allowed; a wait that ends before the deadline without one is not.
  do rc = __wrap_pthread_cond_clockwait(&cond, &mutex, CLOCK_MONOTONIC, &deadline);
  while (rc == 0);
  const long long elapsed = MonotonicNs() - start;
  pthread_mutex_unlock(&mutex);
  CHECK_EQ(rc, ETIMEDOUT);
  CHECK(elapsed >= 30 * 1000000LL);
  CHECK(elapsed < 5000 * 1000000LL);
}

KATA_TEST(compat_clockwait_realtime_past_deadline_and_bad_clock) {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  pthread_mutex_lock(&mutex);
  const struct timespec past = Deadline(CLOCK_REALTIME, -1000000LL);
  CHECK_EQ(__wrap_pthread_cond_clockwait(&cond, &mutex, CLOCK_REALTIME, &past), ETIMEDOUT);
  const struct timespec mono_past = Deadline(CLOCK_MONOTONIC, -1000000000LL);
  CHECK_EQ(__wrap_pthread_cond_clockwait(&cond, &mutex, CLOCK_MONOTONIC, &mono_past), ETIMEDOUT);
  CHECK_EQ(__wrap_pthread_cond_clockwait(&cond, &mutex, CLOCK_PROCESS_CPUTIME_ID, &past), EINVAL);
  pthread_mutex_unlock(&mutex);
}

KATA_TEST(compat_clockwait_extreme_deadlines) {
  // steady_clock::time_point::min() means "already expired" (the device waiter polls with it);
  // max() means "never". Neither may overflow into the other.
  std::mutex m;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(m);
  const long long start = MonotonicNs();
  CHECK(cv.wait_until(lock, std::chrono::steady_clock::time_point::min()) ==
        std::cv_status::timeout);
  CHECK(!cv.wait_until(lock, std::chrono::steady_clock::time_point::min(), [] { return false; }));
  CHECK(MonotonicNs() - start < 1000 * 1000000LL);

  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  pthread_mutex_lock(&mutex);
  struct timespec ts = {static_cast<time_t>(1) << (sizeof(time_t) * 8 - 1), 0};
  CHECK_EQ(__wrap_pthread_cond_clockwait(&cond, &mutex, CLOCK_MONOTONIC, &ts), ETIMEDOUT);
  ts.tv_nsec = 1000000000L;
  CHECK_EQ(__wrap_pthread_cond_clockwait(&cond, &mutex, CLOCK_MONOTONIC, &ts), EINVAL);
  pthread_mutex_unlock(&mutex);

  bool ready = false;
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::lock_guard<std::mutex> guard(m);
    ready = true;
    cv.notify_one();
  });
  CHECK(cv.wait_until(lock, std::chrono::steady_clock::time_point::max(), [&] { return ready; }));
  lock.unlock();
  t.join();
}

KATA_TEST(compat_condition_variable_is_woken_by_another_thread) {
  // std::thread (pthread_create/join wrappers) and wait_for on steady_clock (clockwait wrapper).
  std::mutex m;
  std::condition_variable cv;
  bool ready = false;
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::lock_guard<std::mutex> lock(m);
    ready = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(m);
  const bool woke = cv.wait_for(lock, std::chrono::seconds(10), [&] { return ready; });
  lock.unlock();
  t.join();
  CHECK(woke);
}

static bool SameStat(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_mode == b.st_mode &&
         a.st_nlink == b.st_nlink && a.st_uid == b.st_uid && a.st_rdev == b.st_rdev &&
         a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
         a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

KATA_TEST(compat_stat_family_matches_glibc) {
  // Field by field: a layout mismatch (struct stat vs the kernel's) would show on big-endian s390x.
  struct stat ours, real;
  CHECK_EQ(__wrap_stat("/dev/null", &ours), 0);
  CHECK_EQ(__real_stat("/dev/null", &real), 0);
  CHECK(S_ISCHR(ours.st_mode));
  CHECK(SameStat(ours, real));

  char dir[] = "/tmp/kata-compat-XXXXXX";
  CHECK(mkdtemp(dir) != nullptr);
  const std::string link = std::string(dir) + "/link";
  const std::string file = std::string(dir) + "/file";
  CHECK_EQ(symlink(dir, link.c_str()), 0);
  CHECK_EQ(__wrap_lstat(link.c_str(), &ours), 0);
  CHECK_EQ(__real_lstat(link.c_str(), &real), 0);
  CHECK(S_ISLNK(ours.st_mode));
  CHECK(SameStat(ours, real));
  CHECK_EQ(__wrap_stat(link.c_str(), &ours), 0);
  CHECK(S_ISDIR(ours.st_mode));

  const int fd = open(file.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0640);
  CHECK(fd >= 0);
  CHECK_EQ(write(fd, "12345", 5), 5);
  CHECK_EQ(__wrap_fstat(fd, &ours), 0);
  CHECK_EQ(__real_fstat(fd, &real), 0);
  CHECK(SameStat(ours, real));
  CHECK_EQ(static_cast<long>(ours.st_size), 5L);
  CHECK_EQ(ours.st_mode & 07777, 0640u);
  const int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK_EQ(__wrap_fstatat(dfd, "file", &ours, 0), 0);
  CHECK(SameStat(ours, real));
  close(dfd);
  close(fd);

  errno = 0;
  CHECK_EQ(__wrap_stat("/nonexistent/kata", &ours), -1);
  CHECK_EQ(errno, ENOENT);
  unlink(link.c_str());
  unlink(file.c_str());
  rmdir(dir);
}

KATA_TEST(compat_thread_names_reach_the_kernel) {
  std::string ours, real, comm;
  std::thread t([&] {
    CHECK_EQ(__wrap_pthread_setname_np(pthread_self(), "kata-compat"), 0);
    char name[16] = {};
    CHECK_EQ(__wrap_pthread_getname_np(pthread_self(), name, sizeof name), 0);
    ours = name;
    CHECK_EQ(__real_pthread_getname_np(pthread_self(), name, sizeof name), 0);
    real = name;
  });
  t.join();
  CHECK_EQ(ours, std::string("kata-compat"));
  CHECK_EQ(real, std::string("kata-compat"));
  // 16 bytes with the NUL is the kernel's limit: longer is ERANGE, as in glibc.
  CHECK_EQ(__wrap_pthread_setname_np(pthread_self(), "a-name-that-is-too-long"), ERANGE);
}

KATA_TEST(compat_libc_single_threaded_says_never) { CHECK_EQ(__wrap___libc_single_threaded, 0); }

KATA_TEST(compat_arc4random_varies) {
  const uint32_t first = __wrap_arc4random();
  bool differs = false;
  for (int i = 0; i < 8 && !differs; i++) differs = __wrap_arc4random() != first;
  CHECK(differs);
}

#if defined(DLFO_STRUCT_HAS_EH_DBASE)
KATA_TEST(compat_dl_find_object_matches_glibc) {
  void* pc = reinterpret_cast<void*>(&Thrower);
  struct dl_find_object ours, real;
  CHECK_EQ(__wrap__dl_find_object(pc, &ours), 0);
  CHECK_EQ(__real__dl_find_object(pc, &real), 0);
  CHECK(ours.dlfo_eh_frame != nullptr);
  CHECK(ours.dlfo_eh_frame == real.dlfo_eh_frame);
  CHECK(ours.dlfo_map_start == real.dlfo_map_start);
  CHECK(ours.dlfo_map_start <= pc && pc < ours.dlfo_map_end);
  int on_stack = 0;
  CHECK_EQ(__wrap__dl_find_object(&on_stack, &ours), -1);
}
#endif

KATA_TEST(compat_exceptions_unwind) {
  bool caught = false;
  try {
    Thrower(5);
  } catch (const std::runtime_error& e) {
    caught = std::string(e.what()) == "unwound";
  }
  CHECK(caught);
}

#endif  // KATA_GLIBC_COMPAT
