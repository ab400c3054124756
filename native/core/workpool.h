// Threads of our own for blocking syscalls. A mount can hang for as long as a virtio-fs daemon or
// an NFS server is gone; running it on libuv's shared pool would starve fs, dns and zlib.
#pragma once

#include <functional>

namespace kata {

// Runs `job` on a pool thread. An idle thread is reused; when every thread is busy (some may be
// stuck in the kernel) a new one is started, so one hung mount never delays the next job.
// Threads idle for a while exit. Jobs must not throw.
void SubmitBlocking(std::function<void()> job);

// Number of pool threads alive now (for tests and diagnostics).
int BlockingPoolThreads();

}  // namespace kata
