// Shared plumbing of the binding files: per-environment state, argument conversion, errors as
// data, and jobs that run on the core's own threads and complete on the JS thread.
// Only files under native/binding include napi.h.
#pragma once

#include <napi.h>

#include <atomic>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "syserror.h"

namespace kata {
namespace binding {

// Each binding file registers what it exports; no central list to edit when one is added.
using ExportFn = void (*)(Napi::Env env, Napi::Object exports);

// One exported function: its JS name, which is also the binding function's name in its file.
struct Exported {
  const char* name;
  Napi::Value (*fn)(const Napi::CallbackInfo&);
};
// Sets each of `list` on `exports`, a function under its name.
void ExportFunctions(Napi::Env env, Napi::Object exports, std::initializer_list<Exported> list);
struct Registrar {
  explicit Registrar(ExportFn fn);
};

class Job;

// Completions from pool threads go through one threadsafe function per environment. `closed` is
// set by the function's finalizer, under `mu`, so a thread finishing after a worker_thread exits
// drops its result instead of touching freed memory.
// Finished jobs wait in `done`; the threadsafe function is only a wake-up, sent when `done` goes
// from idle to busy, so a burst of completions costs one wake-up and is drained in bounded
// batches (see Drain in addon.cc).
struct Completion {
  std::mutex mu;
  napi_threadsafe_function tsfn = nullptr;
  bool closed = false;
  bool signaled = false;        // a wake-up or a drain is already on its way
  std::atomic<int> senders{0};  // pool threads sending a wake-up outside `mu`
  std::deque<Job*> done;
};

struct AddonData {
  std::shared_ptr<Completion> completion;
  int pending = 0;  // jobs in flight; the function keeps the loop alive only while > 0
  Napi::Reference<Napi::Uint32Array> scratch;  // results returned without allocating
  Napi::FunctionReference set_immediate;       // to resume draining after timers and I/O
  Napi::FunctionReference drain;
  // scratch's ArrayBuffer and its storage, which never moves: writing through the pointer spares
  // two Node-API calls per parse. The buffer is checked for detachment before each write.
  Napi::Reference<Napi::ArrayBuffer> scratch_buffer;
  uint32_t* scratch_values = nullptr;
  // lib/errors.ts's nativeError, handed over at load by setErrorConstructor: the one place a
  // native error record becomes the JS error the caller sees.
  Napi::FunctionReference error_constructor;
};

AddonData* Data(Napi::Env env);

// The shared result array exported as `scratch` (4 values), or a thrown Error if JS detached it.
uint32_t* ScratchValues(Napi::Env env);

// A blocking operation, as the pool and the completion queue see it. Bindings never derive from
// it: they start a JobOf (below), which states a call's data and its two halves.
class Job {
 public:
  virtual ~Job() = default;
  // On a pool thread (or the JS thread, RunHere); must not touch napi.
  virtual void Execute() = 0;
  // On the JS thread: the value the promise resolves with.
  virtual Napi::Value Complete(Napi::Env env) = 0;

  // Queues the job and returns its promise (on the JS thread).
  static Napi::Value Start(Napi::Env env, Job* job);
  // Runs the job on the calling (JS) thread and returns its result itself, not a promise: for
  // jobs whose every step is known not to wait on a device, a server or the disk, where the two
  // thread hand-offs of Start cost more than the work.
  static Napi::Value RunHere(Napi::Env env, Job* job);

 private:
  friend struct JobAccess;
  napi_deferred deferred_ = nullptr;
  std::shared_ptr<Completion> completion_;
};

// The one job a binding starts: `Data` holds a call's converted arguments and the core's
// results; `work` calls the core with it (no napi), `done` converts the results for JS.
template <typename Data>
class JobOf final : public Job {
 public:
  using Work = void (*)(Data&);
  using Done = Napi::Value (*)(Napi::Env, Data&);
  JobOf(Data data, Work work, Done done) : data_(std::move(data)), work_(work), done_(done) {}
  void Execute() override { work_(data_); }
  Napi::Value Complete(Napi::Env env) override { return done_(env, data_); }

 private:
  Data data_;
  Work work_;
  Done done_;
};

template <typename T>
struct Exactly {  // keeps a lambda argument from taking part in deducing Data
  using type = T;
};

// Starts a JobOf<Data> on the pool; its promise.
template <typename Data>
Napi::Value StartJob(Napi::Env env, Data data, typename Exactly<void (*)(Data&)>::type work,
                     typename Exactly<Napi::Value (*)(Napi::Env, Data&)>::type done) {
  return Job::Start(env, new JobOf<Data>(std::move(data), work, done));
}

// Runs a JobOf<Data> here (Job::RunHere); its result itself.
template <typename Data>
Napi::Value RunJobHere(Napi::Env env, Data data, typename Exactly<void (*)(Data&)>::type work,
                       typename Exactly<Napi::Value (*)(Napi::Env, Data&)>::type done) {
  return Job::RunHere(env, new JobOf<Data>(std::move(data), work, done));
}

// Argument conversion that throws TypeError with the argument's name.
std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name);
// Like StringArg but refuses embedded NUL bytes (paths for syscalls).
std::string PathArg(const Napi::CallbackInfo& info, size_t i, const char* name);
// A string argument read without touching the heap when it is short, as option lists are: the
// hot path of parseMountOptions (a million words a second is the target) cannot afford V8's length
// pass plus a std::string per call. Throws like StringArg. Valid while the object lives.
class ShortStringArg {
 public:
  ShortStringArg(const Napi::CallbackInfo& info, size_t i, const char* name);
  ShortStringArg(const ShortStringArg&) = delete;
  ShortStringArg& operator=(const ShortStringArg&) = delete;
  std::string_view view() const { return view_; }

 private:
  char inline_[512];
  std::string heap_;
  std::string_view view_;
};
int32_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* name);
bool BoolArg(const Napi::CallbackInfo& info, size_t i, const char* name);

// undefined on success, else the final JS error built from the record by the constructor
// lib/errors.ts handed over (a Node-shaped system error, or a StorageError for our codes).
Napi::Value ErrorValue(Napi::Env env, const SysError& error);
// ErrorValue of one of our codes with the refused value.
Napi::Value CodeError(Napi::Env env, const char* code, const std::string& value);

}  // namespace binding
}  // namespace kata
