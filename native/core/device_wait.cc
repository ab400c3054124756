#include "device_wait.h"

#include <algorithm>

namespace kata {
namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(50);
constexpr size_t kNearestEvents = 3;

using Clock = std::chrono::steady_clock;

// Returns true when the wait is over: found now, or sysfs could not be read.
bool LookNow(const DeviceMatcher& matcher, const std::string& dev_root, const char* via,
             DeviceWaitOutcome* out, DeviceError* err) {
  std::string name;
  // A disk not yet live is not found: its add uevent, still to come, ends the wait.
  if (matcher.Find(&name, err) && BlockNodeLive(DeviceNodePath(dev_root, name))) {
    out->name = std::move(name);
    out->via = via;
    return true;
  }
  return static_cast<bool>(*err);
}

void Wait(UeventMonitor& monitor, UeventWaiter* w, const DeviceMatcher& matcher,
          const std::string& dev_root, Clock::time_point deadline, bool rescan,
          DeviceWaitOutcome* out, DeviceError* err) {
  if (monitor.Wait(w, Clock::time_point::min()) == WaitStatus::kDeadline) {
    matcher.Prepare(rescan);
    if (LookNow(matcher, dev_root, "sysfs", out, err)) return;
  }
  for (;;) {
    auto until = deadline;
    // Without a listener, or after the socket dropped events, sysfs is the only truth left.
    bool polling = monitor.Lossy(w);
    if (polling) until = std::min(deadline, Clock::now() + kPollInterval);
    switch (monitor.Wait(w, until)) {
      case WaitStatus::kMatched:
        out->name = w->event.devname;
        out->via = w->from_cache ? "cache" : "uevent";
        return;
      case WaitStatus::kCancelled:
        out->cancelled = true;
        return;
      case WaitStatus::kDeadline:
        break;
    }
    bool expired = Clock::now() >= deadline;
    // One last look at the deadline so a device that is there is never reported missing.
    if ((polling || expired) &&
        LookNow(matcher, dev_root, polling ? "sysfs-poll" : "sysfs", out, err))
      return;
    if (expired) break;
  }
  // Rank what the listener saw by likeness to what we awaited, for the timeout message.
  std::vector<std::string> recent = monitor.Recent();
  std::reverse(recent.begin(), recent.end());  // newest first among equals
  std::string anchor = matcher.Anchor();
  std::stable_sort(recent.begin(), recent.end(),
                   [&anchor](const std::string& a, const std::string& b) {
                     return Similarity(a.substr(a.find('@') + 1), anchor) >
                            Similarity(b.substr(b.find('@') + 1), anchor);
                   });
  if (recent.size() > kNearestEvents) recent.resize(kNearestEvents);
  out->nearest = std::move(recent);
}

}  // namespace

bool WaitForDevice(UeventMonitor& monitor, UeventWaiter* waiter, const DeviceMatcher& matcher,
                   const std::string& dev_root, std::chrono::milliseconds timeout, bool rescan,
                   DeviceWaitOutcome* out, DeviceError* err) {
  const auto deadline = Clock::now() + timeout;
  waiter->matcher = &matcher;
  monitor.Subscribe(waiter);
  Wait(monitor, waiter, matcher, dev_root, deadline, rescan, out, err);
  monitor.Unsubscribe(waiter);
  return !*err;
}

}  // namespace kata
