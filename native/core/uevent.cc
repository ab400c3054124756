#include "uevent.h"

#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <thread>

namespace kata {
namespace {

constexpr size_t kMaxCachedDevices = 4096;
constexpr size_t kRecentEvents = 64;

bool IsActionWord(std::string_view s) {
  if (s.empty() || s.size() > 16) return false;
  for (char c : s) {
    if (c < 'a' || c > 'z') return false;
  }
  return true;
}

bool ParseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

}  // namespace

bool ParseUevent(const char* data, size_t len, Uevent* out) {
  *out = Uevent();
  if (data == nullptr || len == 0 || len > kMaxUeventSize) return false;
  std::string_view msg(data, len);
  // udevd re-broadcasts on its own group with this magic; we listen to the kernel only.
  if (msg.substr(0, 8) == std::string_view("libudev\0", 8)) return false;

  size_t end = msg.find('\0');
  std::string_view header = msg.substr(0, end);
  size_t at = header.find('@');
  if (at == std::string_view::npos) return false;
  std::string_view action = header.substr(0, at);
  std::string_view devpath = header.substr(at + 1);
  if (!IsActionWord(action) || devpath.empty() || devpath[0] != '/') return false;
  out->action.assign(action);
  out->devpath.assign(devpath);

  size_t pos = end == std::string_view::npos ? len : end + 1;
  while (pos < len) {
    size_t next = msg.find('\0', pos);
    std::string_view field =
        msg.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
    pos = next == std::string_view::npos ? len : next + 1;
    size_t eq = field.find('=');
    if (field.empty() || eq == std::string_view::npos) continue;
    std::string_view key = field.substr(0, eq);
    std::string_view value = field.substr(eq + 1);
    if (key == "ACTION") {
      if (value != action) return false;
    } else if (key == "DEVPATH") {
      if (value != devpath) return false;
    } else if (key == "SUBSYSTEM") {
      out->subsystem.assign(value);
    } else if (key == "DEVTYPE") {
      out->devtype.assign(value);
    } else if (key == "DEVNAME") {
      out->devname.assign(value);
    } else if (key == "SEQNUM") {
      if (!ParseDecimal(value, &out->seqnum)) return false;
    }
  }
  return true;
}

UeventMonitor& UeventMonitor::Instance() {
  static UeventMonitor* monitor = new UeventMonitor();
  return *monitor;
}

bool UeventMonitor::StartLocked() {
  if (running_) return true;
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
  if (fd < 0) return false;
  // A burst of hot-plug events (many disks at once) must not overflow a default-sized buffer.
  int size = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  struct sockaddr_nl addr;
  memset(&addr, 0, sizeof addr);
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = 1;  // the kernel's own multicast group
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return false;
  }
  try {
    std::thread([this, fd] { Run(fd); }).detach();
  } catch (...) {
    close(fd);
    return false;
  }
  running_ = true;
  return true;
}

void UeventMonitor::Run(int fd) {
  std::vector<char> buf(kMaxUeventSize + 1);
  for (;;) {
    struct sockaddr_nl from;
    struct iovec iov = {buf.data(), buf.size()};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_name = &from;
    mh.msg_namelen = sizeof from;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = recvmsg(fd, &mh, 0);
    if (n < 0) {
      int e = errno;
      if (e == EINTR) continue;
      std::lock_guard<std::mutex> lock(mu_);
      if (e == ENOBUFS) {
        ++overflows_;
        continue;
      }
      // The socket is unusable: waiters fall back to polling sysfs, a later wait restarts us.
      running_ = false;
      for (UeventWaiter* w : waiters_) w->cv.notify_all();
      close(fd);
      return;
    }
    // Only the kernel (port 0) speaks on this group; anything else is forged or udevd's.
    if (mh.msg_namelen != sizeof from || from.nl_pid != 0 || (mh.msg_flags & MSG_TRUNC) != 0)
      continue;
    Uevent ev;
    if (ParseUevent(buf.data(), static_cast<size_t>(n), &ev)) Deliver(ev);
  }
}

void UeventMonitor::Deliver(const Uevent& ev) {
  std::lock_guard<std::mutex> lock(mu_);
  ++events_;
  if (recent_.size() == kRecentEvents) recent_.pop_front();
  recent_.push_back(ev.action + "@" + ev.devpath);
  bool added = ev.action == "add" || ev.action == "change";
  if (ev.subsystem == "block") {
    if (added) {
      if (cache_.size() >= kMaxCachedDevices && cache_.find(ev.devpath) == cache_.end()) {
        cache_.erase(cache_.begin());
      }
      cache_[ev.devpath] = ev;
    } else if (ev.action == "remove") {
      cache_.erase(ev.devpath);
    }
  }
  if (!added) return;
  for (UeventWaiter* w : waiters_) {
    if (!w->matched && !w->cancelled && w->matcher->Matches(ev)) {
      w->matched = true;
      w->event = ev;
      ++matched_;
      w->cv.notify_all();
    }
  }
}

bool UeventMonitor::Subscribe(UeventWaiter* w) {
  std::lock_guard<std::mutex> lock(mu_);
  bool listening = StartLocked();
  w->overflows_at_subscribe = overflows_;
  waiters_.push_back(w);
  if (w->cancelled || w->matched) return listening;
  for (const auto& entry : cache_) {
    if (w->matcher->Matches(entry.second)) {
      w->matched = true;
      w->from_cache = true;
      w->event = entry.second;
      break;
    }
  }
  return listening;
}

void UeventMonitor::Unsubscribe(UeventWaiter* w) {
  std::lock_guard<std::mutex> lock(mu_);
  waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), w), waiters_.end());
}

WaitStatus UeventMonitor::Wait(UeventWaiter* w, std::chrono::steady_clock::time_point until) {
  std::unique_lock<std::mutex> lock(mu_);
  w->cv.wait_until(lock, until, [w] { return w->matched || w->cancelled; });
  if (w->cancelled) return WaitStatus::kCancelled;
  if (w->matched) return WaitStatus::kMatched;
  return WaitStatus::kDeadline;
}

void UeventMonitor::Cancel(UeventWaiter* w) {
  std::lock_guard<std::mutex> lock(mu_);
  w->cancelled = true;
  w->cv.notify_all();
}

bool UeventMonitor::Lossy(const UeventWaiter* w) const {
  std::lock_guard<std::mutex> lock(mu_);
  return !running_ || overflows_ != w->overflows_at_subscribe;
}

std::vector<std::string> UeventMonitor::Recent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::vector<std::string>(recent_.begin(), recent_.end());
}

UeventMonitor::State UeventMonitor::GetState() const {
  std::lock_guard<std::mutex> lock(mu_);
  return State{running_, events_, cache_.size(), overflows_, waiters_.size(), matched_};
}

}  // namespace kata
