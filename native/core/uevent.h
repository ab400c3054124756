// Kernel uevents: a parser for the raw datagrams of NETLINK_KOBJECT_UEVENT and one listener per
// process, on its own thread, started on first need and shared by every waiter. It keeps a cache
// of the block devices it has seen (add/change enter, remove purges) and wakes waiters whose
// matcher accepts an event.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace kata {

struct Uevent {
  std::string action;     // add, remove, change, ...
  std::string devpath;    // relative to /sys: /devices/...
  std::string subsystem;  // block, ...
  std::string devtype;    // disk, partition (may be empty)
  std::string devname;    // node name relative to /dev (may be empty)
  uint64_t seqnum = 0;
};

// The kernel sends at most 2048 bytes (UEVENT_BUFFER_SIZE); anything bigger is not one of its.
constexpr size_t kMaxUeventSize = 8192;

// Parses one kernel datagram "action@devpath\0KEY=VALUE\0...". Returns false for anything else
// (libudev's messages, empty or oversized input, a header without '@', a devpath that is not
// absolute, ACTION/DEVPATH fields that contradict the header). Safe on arbitrary bytes.
bool ParseUevent(const char* data, size_t len, Uevent* out);

class UeventMatcher {
 public:
  virtual ~UeventMatcher() = default;
  virtual bool Matches(const Uevent& ev) const = 0;
};

// One pending wait. Owned by the waiting thread; the monitor only touches it under its lock.
struct UeventWaiter {
  const UeventMatcher* matcher = nullptr;
  std::condition_variable cv;
  bool matched = false;
  bool from_cache = false;
  bool cancelled = false;
  Uevent event;
  uint64_t overflows_at_subscribe = 0;
};

enum class WaitStatus { kMatched, kCancelled, kDeadline };

class UeventMonitor {
 public:
  // The process-wide monitor. Never destroyed: its thread may still be in recv() at exit.
  static UeventMonitor& Instance();

  // Starts the listener if it is not running, registers `w` and tests the cache against it.
  // Returns false when uevents cannot be received here (the waiter must poll sysfs instead).
  bool Subscribe(UeventWaiter* w);
  void Unsubscribe(UeventWaiter* w);
  // Blocks until `w` matched or was cancelled, or until `until`.
  WaitStatus Wait(UeventWaiter* w, std::chrono::steady_clock::time_point until);
  void Cancel(UeventWaiter* w);
  // True when events may have been lost since `w` subscribed (socket overflow): poll sysfs.
  bool Lossy(const UeventWaiter* w) const;

  // Takes one event into the cache and to the waiters (the listener thread; tests).
  void Deliver(const Uevent& ev);

  // "action@devpath" of the most recent events, oldest first.
  std::vector<std::string> Recent() const;

  struct State {
    bool running;
    uint64_t events;
    size_t cached;
    uint64_t overflows;
    size_t waiters;
    uint64_t matched;  // waiters woken by a live event
  };
  State GetState() const;

 private:
  UeventMonitor() = default;
  bool StartLocked();
  void Run(int fd);

  mutable std::mutex mu_;
  bool running_ = false;
  std::map<std::string, Uevent> cache_;  // by devpath
  std::deque<std::string> recent_;
  std::vector<UeventWaiter*> waiters_;
  uint64_t events_ = 0;
  uint64_t overflows_ = 0;
  uint64_t matched_ = 0;
};

}  // namespace kata
