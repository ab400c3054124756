#include "workpool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace kata {
namespace {

using Clock = std::chrono::steady_clock;

// Threads started on demand without question. The kernel serializes mounts on its namespace
// lock, so more runnable threads than this add no throughput: 50 of them spinning on that lock
// starved the JS thread of the machine's two cores (event-loop stalls of 100+ ms).
constexpr int kEagerThreads = 4;
// Beyond that, a thread is added only when jobs wait and no thread has made progress for this
// long: the busy ones are probably stuck in the kernel (a dead virtio-fs daemon, NFS).
constexpr auto kStallAfter = std::chrono::milliseconds(20);
constexpr auto kIdleExit = std::chrono::seconds(30);
// A thread that finished a job polls for the next one this long before it sleeps. A request
// through the Sandbox is two jobs with a few tens of microseconds of JS between them, and in a
// guest a futex wake-up of a sleeping thread costs about as much (an IPI, a VM exit, a vCPU
// scheduled back in): the bench's async tmpfs cycle went from 94 to 66 µs, under the 83 µs of
// a C worker woken through a condition variable. One thread at a time polls, and only with a
// second CPU to poll on: on one CPU it would take the time the JS thread needs to submit.
constexpr auto kPoll = std::chrono::microseconds(100);

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

bool CanPoll() {
  cpu_set_t set;
  return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 2;
}

// A worker waiting for a job. Waiters are woken newest first: after a burst of concurrent jobs
// the pool keeps several threads, and waking the one that slept longest (a condition variable's
// order) handed each lone job to a thread whose caches were cold, often placed on the JS
// thread's CPU; a Sandbox request of one storage then took ~40 % longer until they exited.
struct Sleeper {
  std::condition_variable cv;
  bool woken = false;
};

struct Pool {
  std::mutex mu;
  std::vector<Sleeper*> sleepers;      // workers waiting for a job, the newest last
  std::condition_variable supervisor;  // the supervisor waits for queued jobs
  struct Work {
    std::function<void()> job;
    std::function<void()> then;
  };
  std::deque<Work> queue;
  int threads = 0;
  // Threads that will look at the queue under `mu` before they sleep: the sleepers, the polling
  // one, one running a finished job's `then`, and sleepers already handed a job.
  int idle = 0;
  std::atomic<int> queued{0};  // queue.size(), for the polling thread to read without `mu`
  bool polling = false;        // a thread polls `queued`: a lone job needs no wake-up
  const bool can_poll = CanPoll();
  bool supervising = false;
  Clock::time_point last_progress = Clock::now();
};

// Leaked on purpose: pool threads may still be blocked in the kernel at process exit, and a
// destructor racing them would be worse than the few bytes.
Pool& ThePool() {
  static Pool* pool = new Pool();
  return *pool;
}

void WorkerMain(Pool* pool) {
  // A name of their own in ps/top and /proc/<pid>/task, where a stuck mount is looked for (and
  // where the benchmarks count the CPU time the pool spends).
  pthread_setname_np(pthread_self(), "kata-pool");
  Sleeper me;
  std::unique_lock<std::mutex> lock(pool->mu);
  std::function<void()> then;  // the last job's `then`, run once this thread counts as idle
  for (;;) {
    const bool poll = pool->queue.empty() && pool->can_poll && !pool->polling;
    if (poll || then) {
      // Idle (and polling) before `then` wakes whoever waits for the job: the JS thread it
      // wakes often runs at once on this CPU and submits its next job before this thread is
      // back here. Counted busy, that job started a thread or woke a sleeping one (20-50 µs).
      if (poll) pool->polling = true;
      ++pool->idle;
      lock.unlock();
      if (then) std::exchange(then, nullptr)();
      const auto until = Clock::now() + kPoll;
      for (unsigned i = 1; poll && pool->queued.load(std::memory_order_acquire) == 0; ++i) {
        CpuRelax();
        if (i % 64 == 0 && Clock::now() > until) break;
      }
      lock.lock();
      --pool->idle;
      if (poll) pool->polling = false;  // under `mu`: a submit sees this thread polling or not
    }
    while (pool->queue.empty()) {
      ++pool->idle;
      me.woken = false;
      pool->sleepers.push_back(&me);
      const bool woke = me.cv.wait_for(lock, kIdleExit, [&] { return me.woken; });
      --pool->idle;
      if (!woke) {
        // Not handed a job: leave the waiters (a submit pops whom it wakes, under `mu`). With a
        // job queued meanwhile this thread stays and takes it: the sleeper woken for it finds the
        // queue empty and sleeps again.
        pool->sleepers.erase(std::find(pool->sleepers.begin(), pool->sleepers.end(), &me));
        if (pool->queue.empty()) {
          --pool->threads;
          return;
        }
      }
    }
    Pool::Work work = std::move(pool->queue.front());
    pool->queue.pop_front();
    pool->queued.store(static_cast<int>(pool->queue.size()), std::memory_order_relaxed);
    pool->last_progress = Clock::now();
    lock.unlock();
    work.job();
    then = std::move(work.then);
    lock.lock();
    pool->last_progress = Clock::now();
  }
}

// Adds a thread whenever jobs have waited past kStallAfter with no thread making progress.
void SupervisorMain(Pool* pool) {
  std::unique_lock<std::mutex> lock(pool->mu);
  for (;;) {
    pool->supervisor.wait(lock, [&] { return !pool->queue.empty(); });
    pool->supervisor.wait_for(lock, kStallAfter);
    if (pool->queue.empty() || pool->idle > 0) continue;
    if (Clock::now() - pool->last_progress < kStallAfter) continue;
    ++pool->threads;
    pool->last_progress = Clock::now();  // give the new thread its turn before judging again
    std::thread(WorkerMain, pool).detach();
  }
}

}  // namespace

void SubmitBlocking(std::function<void()> job, std::function<void()> then) {
  Pool& pool = ThePool();
  bool spawn = false;
  bool start_supervisor = false;
  bool backlog = false;
  bool poller_takes = false;
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    pool.queue.push_back({std::move(job), std::move(then)});
    pool.queued.store(static_cast<int>(pool.queue.size()), std::memory_order_release);
    // The polling thread sees the job by itself (it locks `mu` before it stops polling).
    poller_takes = pool.polling && pool.queue.size() == 1;
    // Every idle thread is already claimed by an earlier queued job: start another while few.
    if (pool.idle < static_cast<int>(pool.queue.size()) && pool.threads < kEagerThreads) {
      ++pool.threads;
      spawn = true;
    }
    // Only a job no idle thread will take concerns the supervisor: waking it on every submit
    // cost two context switches per call and doubled the latency of a lone async mount.
    backlog = !spawn && pool.idle < static_cast<int>(pool.queue.size());
    if (backlog && !pool.supervising) {
      pool.supervising = true;
      start_supervisor = true;
    }
    // The newest sleeper is woken while `mu` is held: its Sleeper lives on its own stack, and once
    // `mu` is released it may take another job, time out and exit.
    if (!spawn && !poller_takes && !pool.sleepers.empty()) {
      Sleeper* newest = pool.sleepers.back();
      pool.sleepers.pop_back();
      newest->woken = true;
      newest->cv.notify_one();
    }
  }
  if (start_supervisor) std::thread(SupervisorMain, &pool).detach();
  if (spawn) std::thread(WorkerMain, &pool).detach();
  if (backlog) pool.supervisor.notify_one();
}

int BlockingPoolThreads() {
  Pool& pool = ThePool();
  std::lock_guard<std::mutex> lock(pool.mu);
  return pool.threads;
}

int BlockingPoolSleepers() {
  Pool& pool = ThePool();
  std::lock_guard<std::mutex> lock(pool.mu);
  return static_cast<int>(pool.sleepers.size());
}

}  // namespace kata
