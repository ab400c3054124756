#include "addon.h"

#include <thread>

#include "workpool.h"

namespace kata {
namespace binding {
struct JobAccess {
  static void Finish(Napi::Env env, Job* job) {
    AddonData* data = Data(env);
    if (--data->pending == 0) {
      napi_unref_threadsafe_function(env, data->completion->tsfn);
    }
    napi_value result;
    try {
      result = job->Complete(env);
    } catch (const Napi::Error& e) {
      napi_reject_deferred(env, job->deferred_, e.Value());
      return;
    }
    napi_resolve_deferred(env, job->deferred_, result);
  }

  // After Execute(), on the pool thread once it counts as idle again (SubmitBlocking's `then`).
  static void Finished(Job* job) {
    std::shared_ptr<Completion> completion = job->completion_;
    napi_threadsafe_function wake = nullptr;
    {
      std::lock_guard<std::mutex> lock(completion->mu);
      if (completion->closed) {
        delete job;
        return;
      }
      completion->done.push_back(job);
      if (!completion->signaled) {
        completion->signaled = true;
        wake = completion->tsfn;
        completion->senders.fetch_add(1, std::memory_order_relaxed);
      }
    }
    // The wake-up is sent after our lock is released: the JS thread it wakes often runs at once
    // on this CPU, and found the lock still held (a third context switch per call) when it was
    // sent from inside. FinalizeTsfn waits for `senders` before the function goes away.
    if (wake != nullptr) {
      if (napi_call_threadsafe_function(wake, nullptr, napi_tsfn_nonblocking) != napi_ok) {
        // The environment is closing: nobody will drain, and FinalizeTsfn drops what is queued.
      }
      completion->senders.fetch_sub(1, std::memory_order_release);
    }
  }

  // Settles at most kBatch finished jobs, then yields: Node dispatches up to 1000 threadsafe
  // calls per loop turn, which under a steady stream of completions (50 containers mounting at
  // once) starved timers and I/O for 100+ ms. A batch and its promise reactions stay short, and
  // the rest resumes from setImmediate, after the loop's timers and polling.
  static void Drain(Napi::Env env) {
    constexpr int kBatch = 16;
    AddonData* data = Data(env);
    std::shared_ptr<Completion> completion = data->completion;
    for (int n = 0; n < kBatch; ++n) {
      Job* job;
      {
        std::lock_guard<std::mutex> lock(completion->mu);
        if (completion->done.empty()) {
          completion->signaled = false;
          return;
        }
        job = completion->done.front();
        completion->done.pop_front();
      }
      std::unique_ptr<Job> owned(job);
      Finish(env, job);
    }
    {
      std::lock_guard<std::mutex> lock(completion->mu);
      if (completion->done.empty()) {
        completion->signaled = false;
        return;
      }
    }
    data->set_immediate.Call({data->drain.Value()});
  }
};

namespace {

std::vector<ExportFn>& Exporters() {
  static std::vector<ExportFn> fns;
  return fns;
}

void CallJs(napi_env env, napi_value /*js_cb*/, void* /*context*/, void* /*data*/) {
  if (env == nullptr) return;  // environment is going away: FinalizeTsfn drops what is queued
  Napi::Env e(env);
  Napi::HandleScope scope(e);
  JobAccess::Drain(e);
}

// setErrorConstructor(nativeError): lib/native/binding.ts calls it once, right after loading.
Napi::Value SetErrorConstructor(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction())
    throw Napi::TypeError::New(info.Env(), "The \"constructor\" argument must be a function");
  Data(info.Env())->error_constructor = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Value DrainFromImmediate(const Napi::CallbackInfo& info) {
  JobAccess::Drain(info.Env());
  return info.Env().Undefined();
}

void FinalizeTsfn(napi_env /*env*/, void* finalize_data, void* /*hint*/) {
  auto* holder = static_cast<std::shared_ptr<Completion>*>(finalize_data);
  std::deque<Job*> orphans;
  {
    std::lock_guard<std::mutex> lock((*holder)->mu);
    (*holder)->closed = true;
    (*holder)->tsfn = nullptr;
    orphans.swap((*holder)->done);
  }
  // A pool thread may be inside napi_call_threadsafe_function (it returns napi_closing now):
  // the function must outlive that call, which never blocks.
  while ((*holder)->senders.load(std::memory_order_acquire) > 0) std::this_thread::yield();
  // Nobody is left to settle these promises: the environment is gone.
  for (Job* job : orphans) delete job;
  delete holder;
}

}  // namespace

Registrar::Registrar(ExportFn fn) { Exporters().push_back(fn); }

void ExportFunctions(Napi::Env env, Napi::Object exports, std::initializer_list<Exported> list) {
  for (const Exported& e : list) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
}

AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

Napi::Value Job::Start(Napi::Env env, Job* job) {
  AddonData* data = Data(env);
  napi_value promise;
  if (napi_create_promise(env, &job->deferred_, &promise) != napi_ok) {
    delete job;
    throw Napi::Error::New(env, "cannot create promise");
  }
  job->completion_ = data->completion;
  if (data->pending++ == 0) napi_ref_threadsafe_function(env, data->completion->tsfn);
  SubmitBlocking([job] { job->Execute(); }, [job] { JobAccess::Finished(job); });
  return Napi::Value(env, promise);
}

Napi::Value Job::RunHere(Napi::Env env, Job* job) {
  std::unique_ptr<Job> owned(job);
  job->Execute();
  return job->Complete(env);
}

namespace {

// The slow path of a string argument: a typeof, then the length and the bytes (Utf8Value).
std::string Utf8Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) {
    throw Napi::TypeError::New(info.Env(),
                               std::string("The \"") + name + "\" argument must be a string");
  }
  return info[i].As<Napi::String>().Utf8Value();
}

}  // namespace

// Through ShortStringArg: one Node-API call for the common short string (paths, fstypes, option
// lists), where Utf8Value makes two after a typeof; a sync mount reads four.
std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return std::string(ShortStringArg(info, i, name).view());
}

std::string PathArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  std::string s = StringArg(info, i, name);
  if (s.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(
        info.Env(), std::string("The \"") + name + "\" argument must not contain null bytes");
  }
  return s;
}

ShortStringArg::ShortStringArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  size_t len = 0;
  if (napi_get_value_string_utf8(info.Env(), info[i], inline_, sizeof inline_, &len) == napi_ok &&
      len + 4 < sizeof inline_) {
    // Room to spare for a whole UTF-8 sequence (at most 4 bytes), so nothing was cut off.
    view_ = std::string_view(inline_, len);
    return;
  }
  heap_ = Utf8Arg(info, i, name);  // too long for the buffer, or not a string: throws then
  view_ = heap_;
}

uint32_t* ScratchValues(Napi::Env env) {
  AddonData* data = Data(env);
  if (data->scratch_buffer.Value().IsDetached()) {
    throw Napi::Error::New(env, "kata-storage: the native scratch buffer was detached");
  }
  return data->scratch_values;
}

int32_t IntArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(),
                               std::string("The \"") + name + "\" argument must be a number");
  }
  return info[i].As<Napi::Number>().Int32Value();
}

bool BoolArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsBoolean()) {
    throw Napi::TypeError::New(info.Env(),
                               std::string("The \"") + name + "\" argument must be a boolean");
  }
  return info[i].As<Napi::Boolean>().Value();
}

Napi::Value ErrorValue(Napi::Env env, const SysError& error) {
  if (!error) return env.Undefined();
  AddonData* data = Data(env);
  if (data->error_constructor.IsEmpty()) {
    throw Napi::Error::New(
        env, "kata-storage: setErrorConstructor was not called before a native error");
  }
  napi_value undefined = env.Undefined();
  auto str = [&](const std::string& s) -> napi_value {
    return s.empty() ? undefined : Napi::String::New(env, s);
  };
  napi_value messages = undefined;
  if (!error.kernel_messages.empty()) {
    Napi::Array m = Napi::Array::New(env, error.kernel_messages.size());
    for (uint32_t i = 0; i < error.kernel_messages.size(); ++i) m.Set(i, error.kernel_messages[i]);
    messages = m;
  }
  // nativeError(errno, syscall, path, dest, kernelMessages, code, value, reason, detail)
  return data->error_constructor.Call({
      error.err != 0 ? Napi::Number::New(env, error.err) : undefined,
      error.err != 0 ? Napi::String::New(env, error.syscall) : undefined,
      str(error.path),
      str(error.dest),
      messages,
      error.code != nullptr ? Napi::String::New(env, error.code) : undefined,
      error.code != nullptr ? Napi::String::New(env, error.value) : undefined,
      str(error.reason),
      str(error.detail),
  });
}

Napi::Value CodeError(Napi::Env env, const char* code, const std::string& value) {
  SysError e;
  e.Set(code, value);
  return ErrorValue(env, e);
}

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->completion = std::make_shared<Completion>();
  auto* holder = new std::shared_ptr<Completion>(data->completion);
  napi_value name = Napi::String::New(env, "kata-storage");
  if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, holder, FinalizeTsfn,
                                      nullptr, CallJs, &data->completion->tsfn) != napi_ok) {
    delete holder;
    delete data;
    throw Napi::Error::New(env, "cannot create threadsafe function");
  }
  napi_unref_threadsafe_function(env, data->completion->tsfn);
  data->set_immediate = Napi::Persistent(env.Global().Get("setImmediate").As<Napi::Function>());
  data->drain = Napi::Persistent(Napi::Function::New(env, DrainFromImmediate, "kataStorageDrain"));
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, 4 * sizeof(uint32_t));
  Napi::Uint32Array scratch = Napi::Uint32Array::New(env, 4, buffer, 0);
  data->scratch = Napi::Persistent(scratch);
  data->scratch_buffer = Napi::Persistent(buffer);
  data->scratch_values = static_cast<uint32_t*>(buffer.Data());
  env.SetInstanceData<AddonData>(data);
  exports.Set("scratch", scratch);
  exports.Set("setErrorConstructor",
              Napi::Function::New(env, SetErrorConstructor, "setErrorConstructor"));
  for (ExportFn fn : Exporters()) fn(env, exports);
  return exports;
}

}  // namespace
}  // namespace binding
}  // namespace kata

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return kata::binding::Init(env, exports);
}

NODE_API_MODULE(kata_storage, InitAddon)
