// Bindings for option parsing and mount/umount: argument conversion and results only.
#include <sys/mount.h>

#include "addon.h"
#include "mount.h"
#include "newmount.h"
#include "options.h"
#include "storage_steps.h"

namespace kata {
namespace binding {
namespace {

const char* OptionErrorCode(OptionError e) {
  return e == OptionError::kTooLong ? "ERR_MOUNT_OPTIONS_TOO_LONG" : "ERR_INVALID_MOUNT_OPTION";
}

// parseMountOptions(list: string): string | StorageError
// Flags and propagation land in the shared scratch array so a parse allocates only its data string.
Napi::Value ParseMountOptions(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ShortStringArg list(info, 0, "options");
  // Reused per thread so the data string keeps its buffer from one parse to the next.
  static thread_local MountOptions opts;
  std::string bad;
  OptionError err = kata::ParseMountOptions(list.view(), &opts, &bad);
  if (err != OptionError::kNone) return CodeError(env, OptionErrorCode(err), bad);
  uint32_t* scratch = ScratchValues(env);
  scratch[0] = static_cast<uint32_t>(opts.flags);
  scratch[1] = static_cast<uint32_t>(opts.propagation);
  scratch[2] = static_cast<uint32_t>(opts.recursive_flags);
  return Napi::String::New(env, opts.data);
}

struct MountArgs {
  std::string source, target, fstype, beneath;
  MountOptions options;
  MountRequest request;  // request.beneath points into `beneath`: set after the last move
};

MountApi MountApiArg(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsUndefined()) return MountApi::kAuto;
  const int32_t v = IntArg(info, i, "mountApi");
  if (v < 0 || v > 2)
    throw Napi::RangeError::New(info.Env(), "mountApi must be 0 (auto), 1 (new) or 2 (legacy)");
  return static_cast<MountApi>(v);
}

// Returns false after filling `result` with the option error to hand back.
bool ReadMountArgs(const Napi::CallbackInfo& info, MountArgs* args, Napi::Value* result) {
  args->source = PathArg(info, 0, "source");
  args->target = PathArg(info, 1, "target");
  args->fstype = PathArg(info, 2, "fstype");
  std::string list = StringArg(info, 3, "options");
  std::string bad;
  OptionError err = kata::ParseMountOptions(list, &args->options, &bad);
  if (err != OptionError::kNone) {
    *result = CodeError(info.Env(), OptionErrorCode(err), bad);
    return false;
  }
  args->request.api = MountApiArg(info, 4);
  if (!info[5].IsUndefined()) args->beneath = PathArg(info, 5, "beneath");
  // mount(2) has no way to apply an attribute to a whole tree: refuse rather than half-apply.
  if (args->options.recursive_flags &&
      kata::EffectiveMountApi(args->request.api, args->options) == MountApi::kLegacy) {
    *result = CodeError(info.Env(), "ERR_INVALID_MOUNT_OPTION", args->options.recursive_word);
    return false;
  }
  return true;
}

bool DoMount(MountArgs& a, SysError* error) {
  a.request.beneath = a.beneath.empty() ? nullptr : a.beneath.c_str();
  return kata::Mount(a.source.c_str(), a.target.c_str(),
                     a.fstype.empty() ? nullptr : a.fstype.c_str(), a.options, error, a.request);
}

Napi::Value MountSync(const Napi::CallbackInfo& info) {
  MountArgs args;
  Napi::Value result;
  if (!ReadMountArgs(info, &args, &result)) return result;
  SysError error;
  DoMount(args, &error);
  return ErrorValue(info.Env(), error);
}

class MountJob : public Job {
 public:
  explicit MountJob(MountArgs args) : args_(std::move(args)) {}
  void Execute() override { DoMount(args_, &error_); }
  Napi::Value Complete(Napi::Env env) override { return ErrorValue(env, error_); }

 private:
  MountArgs args_;
  SysError error_;
};

Napi::Value Mount(const Napi::CallbackInfo& info) {
  MountArgs args;
  Napi::Value result;
  if (!ReadMountArgs(info, &args, &result)) {
    auto d = Napi::Promise::Deferred::New(info.Env());
    d.Resolve(result);
    return d.Promise();
  }
  return Job::Start(info.Env(), new MountJob(std::move(args)));
}

class RemountJob : public Job {
 public:
  RemountJob(std::string target, MountOptions options, MountApi api)
      : target_(std::move(target)), options_(std::move(options)), api_(api) {}
  void Execute() override { kata::Remount(target_.c_str(), options_, api_, &used_, &error_); }
  Napi::Value Complete(Napi::Env env) override {
    if (error_) return ErrorValue(env, error_);
    return Napi::String::New(env, used_ == MountApi::kNew ? "new" : "legacy");
  }

 private:
  std::string target_;
  MountOptions options_;
  MountApi api_;
  MountApi used_ = MountApi::kLegacy;
  SysError error_;
};

// remount(target, options, api): Promise<'new' | 'legacy' | Error>
Napi::Value Remount(const Napi::CallbackInfo& info) {
  std::string target = PathArg(info, 0, "target");
  MountOptions options;
  std::string bad;
  const OptionError err = kata::ParseMountOptions(StringArg(info, 1, "options"), &options, &bad);
  if (err != OptionError::kNone) {
    auto d = Napi::Promise::Deferred::New(info.Env());
    d.Resolve(CodeError(info.Env(), OptionErrorCode(err), bad));
    return d.Promise();
  }
  return Job::Start(info.Env(),
                    new RemountJob(std::move(target), std::move(options), MountApiArg(info, 2)));
}

// Elements of the job arrays below: checked like the arguments, named by position.
Napi::Value Element(Napi::Env env, const Napi::Array& a, uint32_t i, const char* what,
                    bool (Napi::Value::*is)() const, const char* type) {
  Napi::Value v = a.Get(i);
  if (!(v.*is)()) {
    throw Napi::TypeError::New(env,
                               std::string(what) + "[" + std::to_string(i) + "] must be " + type);
  }
  return v;
}

std::string ElementString(Napi::Env env, const Napi::Array& a, uint32_t i, const char* what) {
  std::string s =
      Element(env, a, i, what, &Napi::Value::IsString, "a string").As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(
        env, std::string(what) + "[" + std::to_string(i) + "] must not contain NUL bytes");
  }
  return s;
}

double ElementNumber(Napi::Env env, const Napi::Array& a, uint32_t i, const char* what) {
  return Element(env, a, i, what, &Napi::Value::IsNumber, "a number")
      .As<Napi::Number>()
      .DoubleValue();
}

bool ElementBool(Napi::Env env, const Napi::Array& a, uint32_t i, const char* what) {
  return Element(env, a, i, what, &Napi::Value::IsBoolean, "a boolean").As<Napi::Boolean>().Value();
}

Napi::Array ElementArray(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(what) + " must be an array");
  return v.As<Napi::Array>();
}

Napi::Array Strings(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (uint32_t i = 0; i < v.size(); ++i) a.Set(i, v[i]);
  return a;
}

Napi::Array Errors(Napi::Env env, const std::vector<SysError>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (uint32_t i = 0; i < v.size(); ++i) a.Set(i, ErrorValue(env, v[i]));
  return a;
}

class ApplyStoragesJob : public Job {
 public:
  explicit ApplyStoragesJob(std::vector<StorageJob> jobs) : jobs_(std::move(jobs)) {}
  void Execute() override {
    if (!kata::ApplyStorages(jobs_, &outcomes_, &failed_, &error_, &undo_errors_, &refusal_)) {
      ok_ = false;
    }
  }
  Napi::Value Complete(Napi::Env env) override {
    Napi::Array outcomes = Napi::Array::New(env, outcomes_.size());
    for (uint32_t i = 0; i < outcomes_.size(); ++i) {
      const StorageOutcome& o = outcomes_[i];
      Napi::Array x = Napi::Array::New(env, 4);
      x.Set(uint32_t{0}, Strings(env, o.undo.created));
      x.Set(uint32_t{1}, Strings(env, o.undo.mounted));
      x.Set(uint32_t{2}, o.ownership_skipped);
      x.Set(uint32_t{3}, static_cast<double>(o.duration_ns));
      outcomes.Set(i, x);
    }
    Napi::Array result = Napi::Array::New(env, 5);
    result.Set(uint32_t{0}, outcomes);
    if (refusal_.stop != BeneathError::kNone) {
      Napi::Array refusal = Napi::Array::New(env, 2);
      refusal.Set(uint32_t{0}, refusal_.stop == BeneathError::kSymlink ? "symlink" : "notdir");
      refusal.Set(uint32_t{1}, refusal_.path);
      result.Set(uint32_t{4}, refusal);
    }
    result.Set(uint32_t{1}, ok_ ? -1.0 : static_cast<double>(failed_));
    result.Set(uint32_t{2}, ErrorValue(env, error_));
    result.Set(uint32_t{3}, Errors(env, undo_errors_));
    return result;
  }

 private:
  std::vector<StorageJob> jobs_;
  std::vector<StorageOutcome> outcomes_;
  size_t failed_ = 0;
  bool ok_ = true;
  SysError error_;
  std::vector<SysError> undo_errors_;
  StorageRefusal refusal_;
};

// applyStorages(jobs: Array<[root, rel, leafFile, beneath, source, fstype, options, api, fsGroup,
//   fsGroupReadOnly, onRootMismatch, fsgid]>) (fsGroup and fsgid -1 when none):
// Promise<[outcomes: Array<[created, mounted, ownershipSkipped, durationNs]>, failed: number (-1
// when none), error: Error | undefined, undoErrors: Error[], refusal?: ['symlink' | 'notdir',
// path]]>. One job for a request's storages; a refusal means nothing was touched.
Napi::Value ApplyStorages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list = ElementArray(env, info[0], "jobs");
  std::vector<StorageJob> jobs(list.Length());
  SysError refused;
  size_t refused_at = 0;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Array a = ElementArray(env, list.Get(i), "jobs[i]");
    StorageJob& j = jobs[i];
    j.point.root = ElementString(env, a, 0, "job");
    j.point.rel = ElementString(env, a, 1, "job");
    j.point.leaf_file = ElementBool(env, a, 2, "job");
    j.point.beneath = ElementBool(env, a, 3, "job");
    j.source = ElementString(env, a, 4, "job");
    j.fstype = ElementString(env, a, 5, "job");
    std::string bad;
    // Elements joined by NUL (lib/options.ts joinOptions), as the tokenizer reads them.
    const std::string list = Element(env, a, 6, "job", &Napi::Value::IsString, "a string")
                                 .As<Napi::String>()
                                 .Utf8Value();
    OptionError err = kata::ParseMountOptions(list, &j.options, &bad);
    const double api = ElementNumber(env, a, 7, "job");
    if (api < 0 || api > 2) throw Napi::RangeError::New(env, "mountApi must be 0, 1 or 2");
    j.api = static_cast<MountApi>(static_cast<int>(api));
    j.fs_group = static_cast<int64_t>(ElementNumber(env, a, 8, "job"));
    j.fs_group_read_only = ElementBool(env, a, 9, "job");
    j.fs_group_on_root_mismatch = ElementBool(env, a, 10, "job");
    j.fsgid = static_cast<int64_t>(ElementNumber(env, a, 11, "job"));
    if (refused) continue;
    if (err != OptionError::kNone) {
      refused.Set(OptionErrorCode(err), bad);
      refused_at = i;
    } else if (j.options.recursive_flags &&
               kata::EffectiveMountApi(j.api, j.options) == MountApi::kLegacy) {
      refused.Set("ERR_INVALID_MOUNT_OPTION", j.options.recursive_word);
      refused_at = i;
    }
  }
  if (refused) {
    // Refused before anything was done: no outcomes, the index of the storage, why.
    Napi::Array result = Napi::Array::New(env, 4);
    result.Set(uint32_t{0}, Napi::Array::New(env, 0));
    result.Set(uint32_t{1}, static_cast<double>(refused_at));
    result.Set(uint32_t{2}, ErrorValue(env, refused));
    result.Set(uint32_t{3}, Napi::Array::New(env, 0));
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(result);
    return d.Promise();
  }
  return Job::Start(env, new ApplyStoragesJob(std::move(jobs)));
}

class ReleaseStoragesJob : public Job {
 public:
  ReleaseStoragesJob(std::vector<StorageRelease> releases, UmountOptions umount)
      : releases_(std::move(releases)), umount_(umount) {}
  void Execute() override { kata::ReleaseStorages(releases_, umount_, &outcomes_); }
  Napi::Value Complete(Napi::Env env) override {
    Napi::Array result = Napi::Array::New(env, outcomes_.size());
    for (uint32_t i = 0; i < outcomes_.size(); ++i) {
      const ReleaseOutcome& o = outcomes_[i];
      Napi::Array x = Napi::Array::New(env, 5);
      x.Set(uint32_t{0}, ErrorValue(env, o.error));
      x.Set(uint32_t{1}, static_cast<double>(o.mounts_left));
      x.Set(uint32_t{2}, Strings(env, o.leftovers));
      x.Set(uint32_t{3}, Errors(env, o.leftover_errors));
      x.Set(uint32_t{4}, static_cast<double>(o.duration_ns));
      result.Set(i, x);
    }
    return result;
  }

 private:
  std::vector<StorageRelease> releases_;
  UmountOptions umount_;
  std::vector<ReleaseOutcome> outcomes_;
};

// releaseStorages(list: Array<[mounted: string[], created: string[]]>, busyTimeoutMs):
// Promise<Array<[error | undefined, mountsLeft, leftovers: string[], leftoverErrors: Error[],
// durationNs]>>. One job for the storages a release gives back.
Napi::Value ReleaseStorages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list = ElementArray(env, info[0], "list");
  std::vector<StorageRelease> releases(list.Length());
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Array a = ElementArray(env, list.Get(i), "list[i]");
    Napi::Array mounted = ElementArray(env, a.Get(uint32_t{0}), "mounted");
    Napi::Array created = ElementArray(env, a.Get(uint32_t{1}), "created");
    for (uint32_t k = 0; k < mounted.Length(); ++k)
      releases[i].mounted.push_back(ElementString(env, mounted, k, "mounted"));
    for (uint32_t k = 0; k < created.Length(); ++k)
      releases[i].created.push_back(ElementString(env, created, k, "created"));
  }
  UmountOptions umount;
  umount.busy_timeout_ms = IntArg(info, 1, "busyTimeoutMs");
  return Job::Start(env, new ReleaseStoragesJob(std::move(releases), umount));
}

struct UmountArgs {
  std::string target;
  UmountOptions options;
};

UmountArgs ReadUmountArgs(const Napi::CallbackInfo& info) {
  UmountArgs a;
  a.target = PathArg(info, 0, "target");
  a.options.detach = BoolArg(info, 1, "detach");
  a.options.force = BoolArg(info, 2, "force");
  a.options.expire = BoolArg(info, 3, "expire");
  a.options.busy_timeout_ms = IntArg(info, 4, "busyTimeoutMs");
  return a;
}

Napi::Value UmountSync(const Napi::CallbackInfo& info) {
  UmountArgs a = ReadUmountArgs(info);
  SysError error;
  kata::Umount(a.target.c_str(), a.options, &error);
  return ErrorValue(info.Env(), error);
}

class UmountJob : public Job {
 public:
  explicit UmountJob(UmountArgs args) : args_(std::move(args)) {}
  void Execute() override { kata::Umount(args_.target.c_str(), args_.options, &error_); }
  Napi::Value Complete(Napi::Env env) override { return ErrorValue(env, error_); }

 private:
  UmountArgs args_;
  SysError error_;
};

Napi::Value Umount(const Napi::CallbackInfo& info) {
  return Job::Start(info.Env(), new UmountJob(ReadUmountArgs(info)));
}

// isMountPoint(path): boolean | error descriptor
Napi::Value IsMountPoint(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0, "path");
  bool result = false;
  SysError error;
  if (!kata::IsMountPoint(path.c_str(), &result, &error)) return ErrorValue(info.Env(), error);
  return Napi::Boolean::New(info.Env(), result);
}

// effectiveMountApi(api, list): 'new' | 'legacy' | StorageError (an option the parser refuses)
Napi::Value EffectiveMountApi(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const MountApi api = MountApiArg(info, 0);
  MountOptions opts;
  std::string bad;
  const OptionError err = kata::ParseMountOptions(StringArg(info, 1, "options"), &opts, &bad);
  if (err != OptionError::kNone) return CodeError(env, OptionErrorCode(err), bad);
  return Napi::String::New(env,
                           kata::EffectiveMountApi(api, opts) == MountApi::kNew ? "new" : "legacy");
}

// optionWords(list): string[], the words of the option elements exactly as the parser and the
// new API split them (quotes and escapes kept), for drivers that read options themselves.
Napi::Value OptionWords(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string list = StringArg(info, 0, "options");
  Napi::Array out = Napi::Array::New(env);
  std::string_view word;
  uint32_t n = 0;
  for (size_t pos = 0; NextOptionWord(list, &pos, &word);) {
    if (!word.empty()) out.Set(n++, Napi::String::New(env, word.data(), word.size()));
  }
  return out;
}

// newMountApiSupport(): which calls of the new mount API this process may make (probed once).
Napi::Value NewMountApiSupport(const Napi::CallbackInfo& info) {
  const NewMountSupport& s = ProbeNewMountApi();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("fsopen", s.fsopen);
  o.Set("fsconfig", s.fsconfig);
  o.Set("fsmount", s.fsmount);
  o.Set("move_mount", s.move_mount);
  o.Set("open_tree", s.open_tree);
  o.Set("mount_setattr", s.mount_setattr);
  o.Set("openat2", s.openat2);
  o.Set("fspick", s.fspick);
  o.Set("complete", s.Complete());
  return o;
}

Napi::Object MountFlags(Napi::Env env) {
  Napi::Object f = Napi::Object::New(env);
#define KATA_FLAG(name) f.Set(#name, Napi::Number::New(env, static_cast<double>(MS_##name)))
  KATA_FLAG(RDONLY);
  KATA_FLAG(NOSUID);
  KATA_FLAG(NODEV);
  KATA_FLAG(NOEXEC);
  KATA_FLAG(SYNCHRONOUS);
  KATA_FLAG(REMOUNT);
  KATA_FLAG(MANDLOCK);
  KATA_FLAG(DIRSYNC);
  KATA_FLAG(NOSYMFOLLOW);
  KATA_FLAG(NOATIME);
  KATA_FLAG(NODIRATIME);
  KATA_FLAG(BIND);
  KATA_FLAG(MOVE);
  KATA_FLAG(REC);
  KATA_FLAG(SILENT);
  KATA_FLAG(POSIXACL);
  KATA_FLAG(UNBINDABLE);
  KATA_FLAG(PRIVATE);
  KATA_FLAG(SLAVE);
  KATA_FLAG(SHARED);
  KATA_FLAG(RELATIME);
  KATA_FLAG(I_VERSION);
  KATA_FLAG(STRICTATIME);
  KATA_FLAG(LAZYTIME);
#undef KATA_FLAG
  return f;
}

void Export(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {
                      {"parseMountOptions", ParseMountOptions},
                      {"optionWords", OptionWords},
                      {"mountSync", MountSync},
                      {"mount", Mount},
                      {"remount", Remount},
                      {"applyStorages", ApplyStorages},
                      {"releaseStorages", ReleaseStorages},
                      {"umountSync", UmountSync},
                      {"umount", Umount},
                      {"isMountPoint", IsMountPoint},
                      {"effectiveMountApi", EffectiveMountApi},
                      {"newMountApiSupport", NewMountApiSupport},
                  });
  exports.Set("mountFlags", MountFlags(env));
}

const Registrar registrar(Export);

}  // namespace
}  // namespace binding
}  // namespace kata
