// Waiting for a hot-plugged disk (Kata's get_device_name / wait_for_uevent): subscribe to the
// uevent listener, look in sysfs, then wait for the matching event, a deadline or a cancel.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "device.h"
#include "uevent.h"

namespace kata {

struct DeviceWaitOutcome {
  std::string name;        // the disk's node name under /dev when found
  const char* via = "";    // "sysfs", "sysfs-poll", "cache" or "uevent"
  bool cancelled = false;  // UeventMonitor::Cancel(waiter) ended it
  // When it timed out: the events the listener saw that are most like the awaited one, best first.
  std::vector<std::string> nearest;
};

// Blocks until the device `matcher` describes is there, `timeout` passes, or the waiter is
// cancelled. Subscribes first and looks after, so an event that fired before the subscription
// is found by the look and one after it reaches the waiter; with no listener (or after it lost
// events) sysfs is polled every 50 ms, and looked at once more at the deadline so a device that
// is there is never reported missing; a disk found in sysfs whose node under `dev_root` is not yet
// live (BlockNodeLive) is not found: its add uevent, still to come, ends the wait. `rescan` asks
// the bus to look first (PCI rescan, SCSI scan). False with `err` set when sysfs could not be read;
// true otherwise (found, cancelled or timed out).
bool WaitForDevice(UeventMonitor& monitor, UeventWaiter* waiter, const DeviceMatcher& matcher,
                   const std::string& dev_root, std::chrono::milliseconds timeout, bool rescan,
                   DeviceWaitOutcome* out, DeviceError* err);

}  // namespace kata
