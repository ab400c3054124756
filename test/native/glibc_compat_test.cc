// The glibc-2.28 wrappers (native/core/glibc_compat.cc) must behave like what they replace: they
// carry every thread, condition-variable wait and exception of the addon. Compared against the
// real glibc calls (__real_*) where this glibc has them.
#if defined(KATA_GLIBC_COMPAT)

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "check.h"

extern "C" {
int __wrap_pthread_cond_clockwait(pthread_cond_t*, pthread_mutex_t*, clockid_t, const struct timespec*);
uint32_t __wrap_arc4random();
extern char __wrap___libc_single_threaded;
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
  ts.tv_sec += static_cast<time_t>(ns / 1000000000LL);
  ts.tv_nsec = static_cast<long>(ns % 1000000000LL);
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
