#include "workpool.h"

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace kata {
namespace {

constexpr auto kIdleExit = std::chrono::seconds(30);

struct Pool {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> queue;
  int threads = 0;
  int idle = 0;
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
    lock.unlock();
    job();
    lock.lock();
  }
}

}  // namespace

void SubmitBlocking(std::function<void()> job) {
  Pool& pool = ThePool();
  bool spawn = false;
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    pool.queue.push_back(std::move(job));
    // Every idle thread is already claimed by an earlier queued job: start another.
    if (pool.idle < static_cast<int>(pool.queue.size())) {
      ++pool.threads;
      spawn = true;
    }
  }
  if (spawn) {
    std::thread(WorkerMain, &pool).detach();
  } else {
    pool.cv.notify_one();
  }
}

int BlockingPoolThreads() {
  Pool& pool = ThePool();
  std::lock_guard<std::mutex> lock(pool.mu);
  return pool.threads;
}

}  // namespace kata
