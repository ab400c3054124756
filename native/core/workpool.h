// Threads of our own for blocking syscalls. A mount can hang for as long as a virtio-fs daemon or
// an NFS server is gone; running it on libuv's shared pool would starve fs, dns and zlib.
#pragma once

#include <functional>

namespace kata {

// Runs `job` on a pool thread. Up to a few threads start on demand; past that, a thread is added
// only when queued jobs see no progress for a short while (the busy threads are likely stuck in
// the kernel), so hung mounts never hold up the rest while normal bursts stay off the CPU the JS
// thread needs. A thread that finishes a job polls for the next for 100 µs before it sleeps (on a
// machine with a second CPU), so back-to-back jobs skip the wake-up. Threads idle for a while
// exit. Then `then`, when given, runs on the same thread once it counts as idle again: the
// wake-up of whoever waits for the job, so that the next job it submits finds this thread free.
// Neither may throw; `then` must not block (a job it waits for may need this very thread).
void SubmitBlocking(std::function<void()> job, std::function<void()> then = nullptr);

// Number of pool threads alive now (for tests and diagnostics).
int BlockingPoolThreads();
// Number of them asleep waiting for a job (for tests: the pool is quiet when it equals the above).
int BlockingPoolSleepers();

}  // namespace kata
