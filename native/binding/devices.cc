// Bindings for the device layer: parsers, the sysfs lookup, and waits (native/core/device_wait.h)
// that a pool thread blocks in until the uevent listener, a deadline or the caller's abort ends
// them. Argument conversion and results only.
#include <cerrno>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "addon.h"
#include "device.h"
#include "device_wait.h"
#include "pci.h"

namespace kata {
namespace binding {
namespace {

Napi::Value ParsePciPath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string text = StringArg(info, 0, "path");
  PciPath path;
  if (!kata::ParsePciPath(text, &path)) {
    DeviceError e;
    e.Set("ERR_INVALID_PCI_PATH", text, "invalid PCI path (SS or SS.F hex elements joined by '/')");
    return ErrorValue(env, e);
  }
  Napi::Array a = Napi::Array::New(env, 1 + 2 * path.slots.size());
  a.Set(uint32_t{0}, path.root_complex);
  for (size_t i = 0; i < path.slots.size(); ++i) {
    a.Set(static_cast<uint32_t>(1 + 2 * i), path.slots[i].slot);
    a.Set(static_cast<uint32_t>(2 + 2 * i), path.slots[i].fn);
  }
  return a;
}

Napi::Value ParseCcwDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string text = StringArg(info, 0, "busId");
  CcwDevice dev;
  if (!kata::ParseCcwDevice(text, &dev)) {
    DeviceError e;
    e.Set("ERR_INVALID_CCW_DEVICE", text,
          "invalid CCW bus id (0.<ssid 0-3>.<devno, 1-4 hex digits>)");
    return ErrorValue(env, e);
  }
  Napi::Array a = Napi::Array::New(env, 3);
  a.Set(uint32_t{0}, dev.cssid);
  a.Set(uint32_t{1}, dev.ssid);
  a.Set(uint32_t{2}, dev.devno);
  return a;
}

Napi::Value ParseScsiAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string text = StringArg(info, 0, "addr");
  ScsiAddress addr;
  if (!kata::ParseScsiAddress(text, &addr)) {
    DeviceError e;
    e.Set("ERR_INVALID_SCSI_ADDRESS", text, "invalid SCSI address (decimal target:lun)");
    return ErrorValue(env, e);
  }
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(uint32_t{0}, static_cast<double>(addr.target));
  a.Set(uint32_t{1}, static_cast<double>(addr.lun));
  return a;
}

Napi::Value PciPathToSysfs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string text = StringArg(info, 0, "path");
  std::string sysfs = PathArg(info, 1, "sysfsRoot");
  std::string rc_text = StringArg(info, 2, "rootComplex");
  DeviceError e;
  PciPath path;
  int rc = 0;
  std::string dir;
  if (!kata::ParsePciPath(text, &path)) {
    e.Set("ERR_INVALID_PCI_PATH", text, "invalid PCI path (SS or SS.F hex elements joined by '/')");
  } else if (!ParseRootComplex(rc_text, &rc) ||
             (!rc_text.empty() && path.root_complex >= 0 && path.root_complex != rc)) {
    e.Set("ERR_INVALID_PCI_PATH", rc_text,
          "invalid PCI root complex (1-2 hex digits, as in the path)");
  } else if (kata::PciPathToSysfs(sysfs, path, rc, &dir, &e)) {
    return Napi::String::New(env, dir);
  }
  return ErrorValue(env, e);
}

struct Lookup {
  Bus bus;
  std::string spec, root_complex, sysfs_root, dev_root;
};

Lookup ReadLookup(const Napi::CallbackInfo& info) {
  int32_t bus = IntArg(info, 0, "bus");
  if (bus < 0 || bus > static_cast<int32_t>(Bus::kPmem))
    throw Napi::RangeError::New(info.Env(), "unknown bus");
  return Lookup{static_cast<Bus>(bus), PathArg(info, 1, "spec"), StringArg(info, 2, "rootComplex"),
                PathArg(info, 3, "sysfsRoot"), PathArg(info, 4, "devRoot")};
}

// findBlockDevice(bus, spec, rootComplex, sysfsRoot, devRoot): path | null | error
// sysfs is in memory, so an existing device is resolved right here without a thread hop.
Napi::Value FindBlockDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Lookup l = ReadLookup(info);
  DeviceError e;
  std::unique_ptr<DeviceMatcher> m =
      MakeDeviceMatcher(l.bus, l.spec, l.root_complex, l.sysfs_root, &e);
  std::string name;
  if (m && m->Find(&name, &e) && BlockNodeLive(DeviceNodePath(l.dev_root, name))) {
    return Napi::String::New(env, DeviceNodePath(l.dev_root, name));
  }
  if (e) return ErrorValue(env, e);
  return env.Null();
}

// A wait in flight, reachable by id so an abort on the JS thread can end it early.
struct WaitState {
  UeventWaiter waiter;
};

std::mutex waits_mu;
std::unordered_map<uint32_t, std::shared_ptr<WaitState>> waits;
uint32_t next_wait_id = 1;

void CancelById(uint32_t id) {
  std::shared_ptr<WaitState> state;
  {
    std::lock_guard<std::mutex> lock(waits_mu);
    auto it = waits.find(id);
    if (it != waits.end()) state = it->second;
  }
  if (state) UeventMonitor::Instance().Cancel(&state->waiter);
}

// A worker_thread that exits with waits pending frees their pool threads at once.
void CancelOnTeardown(void* arg) {
  CancelById(static_cast<uint32_t>(reinterpret_cast<uintptr_t>(arg)));
}

// Removes a wait from `waits` when the job's data goes: after Complete, or when the environment
// is gone and Complete never runs (a terminated worker). Moves hand the duty on.
struct WaitRegistration {
  explicit WaitRegistration(uint32_t i) : id(i) {}
  WaitRegistration(WaitRegistration&& o) noexcept : id(o.id) { o.id = 0; }
  WaitRegistration(const WaitRegistration&) = delete;
  WaitRegistration& operator=(const WaitRegistration&) = delete;
  WaitRegistration& operator=(WaitRegistration&&) = delete;
  ~WaitRegistration() {
    if (id == 0) return;
    std::lock_guard<std::mutex> lock(waits_mu);
    waits.erase(id);
  }
  uint32_t id;
};

struct WaitData {
  WaitRegistration registration;
  std::shared_ptr<WaitState> state;
  std::unique_ptr<DeviceMatcher> matcher;
  std::string dev_root;
  int32_t timeout_ms;
  bool rescan;
  DeviceError error;
  DeviceWaitOutcome outcome;
};

void WaitWork(WaitData& d) {
  WaitForDevice(UeventMonitor::Instance(), &d.state->waiter, *d.matcher, d.dev_root,
                std::chrono::milliseconds(d.timeout_ms), d.rescan, &d.outcome, &d.error);
}

Napi::Value WaitOutcome(Napi::Env env, WaitData& d) {
  napi_remove_env_cleanup_hook(env, CancelOnTeardown,
                               reinterpret_cast<void*>(static_cast<uintptr_t>(d.registration.id)));
  if (d.error) return ErrorValue(env, d.error);
  Napi::Object o = Napi::Object::New(env);
  if (!d.outcome.name.empty()) {
    o.Set("path", DeviceNodePath(d.dev_root, d.outcome.name));
    o.Set("via", d.outcome.via);
    return o;
  }
  if (d.outcome.cancelled) {
    o.Set("path", "");
    o.Set("via", "cancelled");
    return o;
  }
  o.Set("errno", ETIMEDOUT);
  o.Set("awaited", d.matcher->Describe());
  o.Set("timeoutMs", d.timeout_ms);
  Napi::Array nearest = Napi::Array::New(env, d.outcome.nearest.size());
  for (size_t i = 0; i < d.outcome.nearest.size(); ++i)
    nearest.Set(static_cast<uint32_t>(i), d.outcome.nearest[i]);
  o.Set("nearest", nearest);
  const std::vector<DeviceError>& failures = d.matcher->Failures();
  Napi::Array details = Napi::Array::New(env, failures.size());
  for (size_t i = 0; i < failures.size(); ++i)
    details.Set(static_cast<uint32_t>(i), ErrorValue(env, failures[i]));
  o.Set("failures", details);
  return o;
}

// waitBlockDevice(bus, spec, rootComplex, sysfsRoot, devRoot, timeoutMs, rescan): [id, promise]
Napi::Value WaitBlockDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Lookup l = ReadLookup(info);
  int32_t timeout_ms = IntArg(info, 5, "timeoutMs");
  bool rescan = BoolArg(info, 6, "rescan");
  if (timeout_ms < 0) throw Napi::RangeError::New(env, "timeoutMs must not be negative");
  DeviceError e;
  std::unique_ptr<DeviceMatcher> m =
      MakeDeviceMatcher(l.bus, l.spec, l.root_complex, l.sysfs_root, &e);
  Napi::Array result = Napi::Array::New(env, 2);
  if (!m) {
    result.Set(uint32_t{0}, 0);
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(ErrorValue(env, e));
    result.Set(uint32_t{1}, d.Promise());
    return result;
  }
  auto state = std::make_shared<WaitState>();
  uint32_t id;
  {
    std::lock_guard<std::mutex> lock(waits_mu);
    id = next_wait_id++;
    if (next_wait_id == 0) next_wait_id = 1;
    waits[id] = state;
  }
  result.Set(uint32_t{0}, id);
  napi_add_env_cleanup_hook(env, CancelOnTeardown,
                            reinterpret_cast<void*>(static_cast<uintptr_t>(id)));
  WaitData d{WaitRegistration(id), state, std::move(m), l.dev_root, timeout_ms, rescan, {}, {}};
  result.Set(uint32_t{1}, StartJob(env, std::move(d), WaitWork, WaitOutcome));
  return result;
}

Napi::Value CancelDeviceWait(const Napi::CallbackInfo& info) {
  CancelById(static_cast<uint32_t>(IntArg(info, 0, "id")));
  return info.Env().Undefined();
}

// deviceNumber(path): [0 block | 1 char | 2 other, major, minor] | error
Napi::Value DeviceNumber(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info, 0, "path");
  NodeType type;
  unsigned major = 0, minor = 0;
  SysError err;
  if (!StatNode(path.c_str(), &type, &major, &minor, &err)) return ErrorValue(env, err);
  Napi::Array a = Napi::Array::New(env, 3);
  a.Set(uint32_t{0}, type == NodeType::kBlock ? 0 : type == NodeType::kChar ? 1 : 2);
  a.Set(uint32_t{1}, major);
  a.Set(uint32_t{2}, minor);
  return a;
}

Napi::Value UeventMonitorState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UeventMonitor::State s = UeventMonitor::Instance().GetState();
  Napi::Object o = Napi::Object::New(env);
  o.Set("running", s.running);
  o.Set("events", static_cast<double>(s.events));
  o.Set("cached", static_cast<double>(s.cached));
  o.Set("overflows", static_cast<double>(s.overflows));
  o.Set("waiters", static_cast<double>(s.waiters));
  o.Set("matched", static_cast<double>(s.matched));
  return o;
}

void Export(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {
                      {"parsePciPath", ParsePciPath},
                      {"parseCcwDevice", ParseCcwDevice},
                      {"parseScsiAddress", ParseScsiAddress},
                      {"pciPathToSysfs", PciPathToSysfs},
                      {"findBlockDevice", FindBlockDevice},
                      {"waitBlockDevice", WaitBlockDevice},
                      {"cancelDeviceWait", CancelDeviceWait},
                      {"deviceNumber", DeviceNumber},
                      {"ueventMonitorState", UeventMonitorState},
                  });
}

const Registrar registrar(Export);

}  // namespace
}  // namespace binding
}  // namespace kata
