#include "workpool.h"

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

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

struct Pool {
  std::mutex mu;
  std::condition_variable cv;          // workers wait for jobs
  std::condition_variable supervisor;  // the supervisor waits for queued jobs
  std::deque<std::function<void()>> queue;
  int threads = 0;
  int idle = 0;
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
  std::unique_lock<std::mutex> lock(pool->mu);
  for (;;) {
    while (pool->queue.empty()) {
      ++pool->idle;
      const bool woke = pool->cv.wait_for(lock, kIdleExit, [&] { return !pool->queue.empty(); });
      --pool->idle;
      if (!woke) {
        --pool->threads;
        return;
      }
    }
    std::function<void()> job = std::move(pool->queue.front());
    pool->queue.pop_front();
    pool->last_progress = Clock::now();
    lock.unlock();
    job();
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

void SubmitBlocking(std::function<void()> job) {
  Pool& pool = ThePool();
  bool spawn = false;
  bool start_supervisor = false;
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    pool.queue.push_back(std::move(job));
    // Every idle thread is already claimed by an earlier queued job: start another while few.
    if (pool.idle < static_cast<int>(pool.queue.size()) && pool.threads < kEagerThreads) {
      ++pool.threads;
      spawn = true;
    }
    if (!pool.supervising) {
      pool.supervising = true;
      start_supervisor = true;
    }
  }
  if (start_supervisor) std::thread(SupervisorMain, &pool).detach();
  if (spawn) {
    std::thread(WorkerMain, &pool).detach();
  } else {
    pool.cv.notify_one();
  }
  pool.supervisor.notify_one();
}

int BlockingPoolThreads() {
  Pool& pool = ThePool();
  std::lock_guard<std::mutex> lock(pool.mu);
  return pool.threads;
}

}  // namespace kata
