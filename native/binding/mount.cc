// Bindings for option parsing and mount/umount: argument conversion and results only.
#include <sys/mount.h>

#include <algorithm>
#include <cmath>

#include "addon.h"
#include "fault.h"
#include "mount.h"
#include "newmount.h"
#include "options.h"
#include "release.h"
#include "storage_steps.h"

namespace kata {
namespace binding {
namespace {

// A refused option word (or, for kTooLong, the data) with the parser's reason, so the message
// says why without reading the word again.
void SetOptionError(OptionError e, std::string bad, SysError* out) {
  out->Set(e == OptionError::kTooLong ? "ERR_MOUNT_OPTIONS_TOO_LONG" : "ERR_INVALID_MOUNT_OPTION",
           std::move(bad), OptionErrorReason(e));
}

Napi::Value OptionErrorValue(Napi::Env env, OptionError e, std::string bad) {
  SysError error;
  SetOptionError(e, std::move(bad), &error);
  return ErrorValue(env, error);
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
  if (err != OptionError::kNone) return OptionErrorValue(env, err, std::move(bad));
  uint32_t* scratch = ScratchValues(env);
  scratch[0] = static_cast<uint32_t>(opts.flags);
  scratch[1] = static_cast<uint32_t>(opts.propagation);
  scratch[2] = static_cast<uint32_t>(opts.recursive_flags);
  return Napi::String::New(env, opts.data);
}

struct MountArgs {
  std::string source, target, fstype, beneath;
  MountOptions options;
  MountRequest request;    // request.beneath points into `beneath`: set after the last move
  bool record_id = false;  // resolve with the new mount's ID (release.h MountIdAt)
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
    *result = OptionErrorValue(info.Env(), err, std::move(bad));
    return false;
  }
  args->request.api = MountApiArg(info, 4);
  if (!info[5].IsUndefined()) args->beneath = PathArg(info, 5, "beneath");
  args->record_id = !info[6].IsUndefined() && BoolArg(info, 6, "recordId");
  // mount(2) has no way to apply an attribute to a whole tree: refuse rather than half-apply.
  if (kata::RecursiveNeedsNewApi(args->options) &&
      kata::EffectiveMountApi(args->request.api, args->options) == MountApi::kLegacy) {
    *result =
        OptionErrorValue(info.Env(), OptionError::kRecursiveLegacy, args->options.recursive_word);
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

struct MountData {
  MountArgs args;
  SysError error;
  uint64_t id = 0;
};

Napi::Value Mount(const Napi::CallbackInfo& info) {
  MountArgs args;
  Napi::Value result;
  if (!ReadMountArgs(info, &args, &result)) {
    auto d = Napi::Promise::Deferred::New(info.Env());
    d.Resolve(result);
    return d.Promise();
  }
  return StartJob(
      info.Env(), MountData{std::move(args), {}, 0},
      [](MountData& d) {
        // The new mount's ID, read by the mount itself from what names the mount (0: unknown).
        if (d.args.record_id) d.args.request.mount_id = &d.id;
        DoMount(d.args, &d.error);
      },
      [](Napi::Env env, MountData& d) -> Napi::Value {
        if (d.error || !d.args.record_id) return ErrorValue(env, d.error);
        return Napi::Number::New(env, static_cast<double>(d.id));
      });
}

// remount(target, options, api): Promise<'new' | 'legacy' | Error>
Napi::Value Remount(const Napi::CallbackInfo& info) {
  std::string target = PathArg(info, 0, "target");
  MountOptions options;
  std::string bad;
  const OptionError err = kata::ParseMountOptions(StringArg(info, 1, "options"), &options, &bad);
  if (err != OptionError::kNone) {
    auto d = Napi::Promise::Deferred::New(info.Env());
    d.Resolve(OptionErrorValue(info.Env(), err, std::move(bad)));
    return d.Promise();
  }
  struct Data {
    std::string target;
    MountOptions options;
    MountApi api = MountApi::kAuto;
    MountApi used = MountApi::kLegacy;
    SysError error;
  };
  return StartJob(
      info.Env(), Data{std::move(target), std::move(options), MountApiArg(info, 2), {}, {}},
      [](Data& d) { kata::Remount(d.target.c_str(), d.options, d.api, &d.used, &d.error); },
      [](Napi::Env env, Data& d) -> Napi::Value {
        if (d.error) return ErrorValue(env, d.error);
        return Napi::String::New(env, d.used == MountApi::kNew ? "new" : "legacy");
      });
}

// The jobs below cross as one string of NUL-ended fields and one Float64Array of numbers per
// storage (lib/native/jobs.ts packs them): two conversions per request instead of a dozen Node-API
// calls per storage, which cost more than the storage's mkdirat and mount. lib/native/jobs.ts
// refuses a field holding a NUL before packing; here a field count that does not match the
// numbers is refused (a stray NUL shifts the fields and leaves one too many).
class Fields {
 public:
  Fields(Napi::Env env, const Napi::Value& v, const char* what) : env_(env), what_(what) {
    if (!v.IsString()) Fail("must be a string");
    text_ = v.As<Napi::String>().Utf8Value();
  }
  std::string_view Next() { return Run(1); }
  // `n` consecutive fields as one NUL-joined view: an option list's elements as the tokenizer
  // reads them (lib/options.ts joinOptions).
  std::string_view Run(size_t n) {
    const size_t start = pos_;
    for (size_t i = 0; i < n; ++i) {
      const size_t end = text_.find('\0', pos_);
      if (end == std::string::npos) Fail("ends before its last field");
      pos_ = end + 1;
    }
    return n == 0 ? std::string_view() : std::string_view(text_).substr(start, pos_ - 1 - start);
  }
  size_t size() const { return text_.size(); }
  void ExpectEnd() {
    if (pos_ != text_.size()) Fail("has more fields than its counts say");
  }

 private:
  [[noreturn]] void Fail(const char* why) {
    throw Napi::TypeError::New(env_, std::string(what_) + " " + why);
  }
  Napi::Env env_;
  const char* what_;
  std::string text_;
  size_t pos_ = 0;
};

// The numbers of `per` per storage; the storage count is their length / per.
Napi::Float64Array Numbers(Napi::Env env, const Napi::Value& v, size_t per, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      v.As<Napi::Float64Array>().ElementLength() % per != 0) {
    throw Napi::TypeError::New(env, std::string(what) + " must be a Float64Array of " +
                                        std::to_string(per) + " numbers per storage");
  }
  return v.As<Napi::Float64Array>();
}

// numbers[i] as an integer in [lo, hi], read once (the array may be shared with another thread):
// NaN, fractions and anything out of range are refused.
int64_t Integer(Napi::Env env, const Napi::Float64Array& numbers, size_t i, double lo, double hi,
                const char* what) {
  const double v = numbers.Data()[i];
  if (!(v >= lo && v <= hi) || v != std::floor(v)) {
    throw Napi::RangeError::New(env, std::string(what) + " must be an integer from " +
                                         std::to_string(static_cast<int64_t>(lo)) + " to " +
                                         std::to_string(static_cast<int64_t>(hi)));
  }
  return static_cast<int64_t>(v);
}

void AppendFields(std::string* out, const std::vector<std::string>& v) {
  for (const std::string& s : v) {
    out->append(s);
    out->push_back('\0');
  }
}

Napi::Value ErrorsOrUndefined(Napi::Env env, const std::vector<SysError>& v) {
  if (v.empty()) return env.Undefined();
  Napi::Array a = Napi::Array::New(env, v.size());
  for (uint32_t i = 0; i < v.size(); ++i) a.Set(i, ErrorValue(env, v[i]));
  return a;
}

// A request's storage jobs and what ApplyStorages made of them.
struct ApplyData {
  std::vector<StorageJob> jobs;
  std::vector<StorageOutcome> outcomes;
  size_t failed = 0;
  bool ok = true;
  SysError error;
  std::vector<SysError> undo_errors;
  StorageRefusal refusal;
};

void ApplyWork(ApplyData& d) {
  d.ok = kata::ApplyStorages(d.jobs, &d.outcomes, &d.failed, &d.error, &d.undo_errors, &d.refusal);
}

Napi::Value AppliedStorages(Napi::Env env, ApplyData& d) {
  Napi::Float64Array counts = Napi::Float64Array::New(env, 5 * d.outcomes.size());
  double* c = counts.Data();
  std::string paths;
  std::vector<double> ids;  // each mount's ID (release.h), in the order of the mounted paths
  for (size_t i = 0; i < d.outcomes.size(); ++i) {
    const StorageOutcome& o = d.outcomes[i];
    c[5 * i] = static_cast<double>(o.undo.created.size());
    c[5 * i + 1] = static_cast<double>(o.undo.mounted.size());
    c[5 * i + 2] = o.ownership_skipped ? 1 : 0;
    c[5 * i + 3] = static_cast<double>(o.duration_ns);
    c[5 * i + 4] = static_cast<double>(o.undo.unmounted.size());
    AppendFields(&paths, o.undo.created);
    for (const MountRef& m : o.undo.mounted) {
      paths.append(m.path);
      paths.push_back('\0');
      ids.push_back(static_cast<double>(m.id));
    }
    for (const MountRef& m : o.undo.unmounted) {
      paths.append(m.path);
      paths.push_back('\0');
    }
  }
  Napi::Float64Array mount_ids = Napi::Float64Array::New(env, ids.size());
  std::copy(ids.begin(), ids.end(), mount_ids.Data());
  Napi::Array result = Napi::Array::New(env, 7);
  result.Set(uint32_t{6}, mount_ids);
  result.Set(uint32_t{0}, counts);
  result.Set(uint32_t{1}, Napi::String::New(env, paths));
  result.Set(uint32_t{2}, d.ok ? -1.0 : static_cast<double>(d.failed));
  if (!d.ok) result.Set(uint32_t{3}, ErrorValue(env, d.error));
  result.Set(uint32_t{4}, ErrorsOrUndefined(env, d.undo_errors));
  if (d.refusal.stop != BeneathError::kNone) {
    Napi::Array refusal = Napi::Array::New(env, 2);
    refusal.Set(uint32_t{0}, d.refusal.stop == BeneathError::kSymlink ? "symlink" : "notdir");
    refusal.Set(uint32_t{1}, d.refusal.path);
    result.Set(uint32_t{5}, refusal);
  }
  return result;
}

// applyStorages(fields: string, numbers: Float64Array, mayRunHere?: boolean): per storage the
// fields root, rel, source, fstype and its option elements, and the numbers [leafFile, api,
// fsGroup (-1: none), fsGroupReadOnly, onRootMismatch, fsgid (-1: none), option element count,
// sourceBlock, acceptPremount, directory count, directoryOnly, mode (-1: none)], each directory's
// fields root and rel after the storage's options.
// [counts: Float64Array (per storage created, mounted, ownershipSkipped, durationNs, unmounted),
// paths: string (per storage its created, mounted, then rolled-back unmounted paths, NUL-ended),
// failed (-1: none), error?, undoErrors?, refusal?: ['symlink' | 'notdir', path], mountIds:
// Float64Array (one per mounted path, in order; 0 unknown)], itself when every step is memory-only
// (CannotBlock) and mayRunHere (run here), else through a promise (run on the pool). One job for a
// request's storages; a refusal means nothing was touched.
Napi::Value ApplyStorages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fields fields(env, info[0], "fields");
  constexpr size_t kPer = 12;
  Napi::Float64Array numbers = Numbers(env, info[1], kPer, "numbers");
  const size_t n = numbers.ElementLength() / kPer;
  // Each storage has at least 4 NUL-ended fields: no more jobs than the string can hold.
  if (n > fields.size() / 4)
    throw Napi::TypeError::New(env, "numbers has more storages than fields");
  std::vector<StorageJob> jobs(n);
  SysError refused;
  size_t refused_at = 0;
  constexpr double kNoId = -1, kMaxId = 0xfffffffe;
  for (size_t i = 0; i < n; ++i) {
    const size_t x = kPer * i;
    StorageJob& j = jobs[i];
    j.point.root = fields.Next();
    j.point.rel = fields.Next();
    j.source = fields.Next();
    j.fstype = fields.Next();
    const auto count = Integer(env, numbers, x + 6, 0, 1e6, "option count");
    std::string bad;
    OptionError err =
        kata::ParseMountOptions(fields.Run(static_cast<size_t>(count)), &j.options, &bad);
    j.point.leaf_file = Integer(env, numbers, x, 0, 1, "leafFile") != 0;
    j.api = static_cast<MountApi>(Integer(env, numbers, x + 1, 0, 2, "mountApi"));
    j.fs_group = Integer(env, numbers, x + 2, kNoId, kMaxId, "fsGroup");
    j.fs_group_read_only = Integer(env, numbers, x + 3, 0, 1, "fsGroupReadOnly") != 0;
    j.fs_group_on_root_mismatch = Integer(env, numbers, x + 4, 0, 1, "onRootMismatch") != 0;
    j.fsgid = Integer(env, numbers, x + 5, kNoId, kMaxId, "fsgid");
    j.source_block = Integer(env, numbers, x + 7, 0, 1, "sourceBlock") != 0;
    j.accept_premount = Integer(env, numbers, x + 8, 0, 1, "acceptPremount") != 0;
    const auto dirs = Integer(env, numbers, x + 9, 0, 64, "directory count");
    j.dirs.resize(static_cast<size_t>(dirs));
    for (MountPointSteps& d : j.dirs) {
      d.root = fields.Next();
      d.rel = fields.Next();
    }
    j.directory_only = Integer(env, numbers, x + 10, 0, 1, "directoryOnly") != 0;
    j.mode = Integer(env, numbers, x + 11, -1, 07777, "mode");
    if (refused) continue;
    if (err != OptionError::kNone) {
      SetOptionError(err, std::move(bad), &refused);
      refused_at = i;
    } else if (kata::RecursiveNeedsNewApi(j.options) &&
               kata::EffectiveMountApi(j.api, j.options) == MountApi::kLegacy) {
      SetOptionError(OptionError::kRecursiveLegacy, j.options.recursive_word, &refused);
      refused_at = i;
    }
  }
  fields.ExpectEnd();
  if (refused) {
    // Refused before anything was done: no outcomes, the index of the storage, why.
    Napi::Array result = Napi::Array::New(env, 4);
    result.Set(uint32_t{0}, Napi::Float64Array::New(env, 0));
    result.Set(uint32_t{1}, Napi::String::New(env, ""));
    result.Set(uint32_t{2}, static_cast<double>(refused_at));
    result.Set(uint32_t{3}, ErrorValue(env, refused));
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(result);
    return d.Promise();
  }
  // Memory-only steps run here, synchronously, and the result comes back as it is; anything that
  // can wait on I/O goes to the pool and comes back as a promise.
  // mayRunHere: the caller's budget for this turn of the event loop is not spent
  // (lib/native/jobs.ts).
  const bool here = info[2].ToBoolean() && kata::CannotBlock(jobs);
  ApplyData d;
  d.jobs = std::move(jobs);
  if (here) return RunJobHere(env, std::move(d), ApplyWork, AppliedStorages);
  return StartJob(env, std::move(d), ApplyWork, AppliedStorages);
}

// The storages a release job gives back and what ReleaseStorages did.
struct ReleaseData {
  std::vector<StorageRelease> releases;
  UmountOptions umount;
  std::vector<ReleaseOutcome> outcomes;
  bool on_top = false;  // RecordedOnTop() held just before: no second statx per mount
};

void ReleaseWork(ReleaseData& d) {
  kata::ReleaseStorages(d.releases, d.umount, &d.outcomes, d.on_top);
}

Napi::Value ReleasedStorages(Napi::Env env, ReleaseData& d) {
  Napi::Float64Array numbers = Napi::Float64Array::New(env, 4 * d.outcomes.size());
  std::string leftovers;
  Napi::Value errors = env.Undefined();
  std::vector<SysError> leftover_errors;
  std::vector<double> steps;
  std::string step_paths;
  Napi::Value step_errors = env.Undefined();
  size_t step_count = 0;
  for (const ReleaseOutcome& o : d.outcomes) step_count += o.steps.size();
  for (size_t i = 0; i < d.outcomes.size(); ++i) {
    const ReleaseOutcome& o = d.outcomes[i];
    numbers[4 * i] = static_cast<double>(o.mounts_left);
    numbers[4 * i + 1] = static_cast<double>(o.leftovers.size());
    numbers[4 * i + 2] = static_cast<double>(o.duration_ns);
    numbers[4 * i + 3] = static_cast<double>(o.steps.size());
    AppendFields(&leftovers, o.leftovers);
    leftover_errors.insert(leftover_errors.end(), o.leftover_errors.begin(),
                           o.leftover_errors.end());
    if (o.error) {
      if (errors.IsUndefined()) errors = Napi::Array::New(env, d.outcomes.size());
      errors.As<Napi::Array>().Set(static_cast<uint32_t>(i), ErrorValue(env, o.error));
    }
    for (const UnmountStep& step : o.steps) {
      if (step.error) {
        if (step_errors.IsUndefined()) step_errors = Napi::Array::New(env, step_count);
        step_errors.As<Napi::Array>().Set(static_cast<uint32_t>(steps.size() / 2),
                                          ErrorValue(env, step.error));
      }
      steps.push_back(static_cast<double>(step.kind));
      steps.push_back(static_cast<double>(step.duration_ns));
      step_paths.append(step.path);
      step_paths.push_back('\0');
    }
  }
  Napi::Float64Array step_numbers = Napi::Float64Array::New(env, steps.size());
  std::copy(steps.begin(), steps.end(), step_numbers.Data());
  Napi::Array result = Napi::Array::New(env, 7);
  result.Set(uint32_t{0}, numbers);
  result.Set(uint32_t{1}, Napi::String::New(env, leftovers));
  result.Set(uint32_t{2}, errors);
  result.Set(uint32_t{3}, ErrorsOrUndefined(env, leftover_errors));
  result.Set(uint32_t{4}, step_numbers);
  result.Set(uint32_t{5}, Napi::String::New(env, step_paths));
  result.Set(uint32_t{6}, step_errors);
  return result;
}

// releaseStorages(fields: string, numbers: Float64Array, perPath: Float64Array, busyTimeoutMs,
// here?: boolean): per storage its mounted then its created paths as fields; numbers [mounted
// count, created count] per storage; perPath, in the order of the fields, each mount's ID (0:
// unknown) and for each created path 1 when it is a tree to remove with its content, else 0;
// here: the mounts are memory-only ones applyStorages ran on the calling thread.
// [numbers: Float64Array (per storage mountsLeft, leftover count, durationNs, step count),
// leftovers: string (NUL-ended, in storage order), errors?: (Error | undefined)[] (by storage),
// leftoverErrors?: Error[] (one per leftover), steps: Float64Array ([kind (0 recorded,
// 1 descendant, 2 gone), durationNs] per unmount step, in storage order), stepPaths: string
// (NUL-ended), stepErrors?: (Error | undefined)[] (by step)], through a promise: settled at once
// when `here` holds, no EBUSY retry can sleep, no tree is to be removed and every recorded mount
// is still on top at its path (run here: release.h RecordedOnTop), else when the pool ran it. One
// job for the storages a release gives back (release.h ReleaseStorages).
Napi::Value ReleaseStorages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fields fields(env, info[0], "fields");
  Napi::Float64Array numbers = Numbers(env, info[1], 2, "numbers");
  Napi::Float64Array per_path = Numbers(env, info[2], 1, "perPath");
  const size_t n = numbers.ElementLength() / 2;
  if (n > fields.size() + 1)
    throw Napi::TypeError::New(env, "numbers has more storages than fields");
  std::vector<StorageRelease> releases(n);
  size_t at = 0;
  auto next_number = [&](double hi, const char* what) {
    if (at >= per_path.ElementLength())
      throw Napi::TypeError::New(env, "perPath has fewer numbers than paths");
    return Integer(env, per_path, at++, 0, hi, what);
  };
  for (size_t i = 0; i < n; ++i) {
    StorageRelease& r = releases[i];
    const auto mounted = Integer(env, numbers, 2 * i, 0, 1e6, "path count");
    const auto created = Integer(env, numbers, 2 * i + 1, 0, 1e6, "path count");
    for (int64_t k = 0; k < mounted; ++k) {
      MountRef m;
      m.path = fields.Next();
      m.id = static_cast<uint64_t>(next_number(9007199254740991.0, "mount ID"));
      r.mounted.push_back(std::move(m));
    }
    for (int64_t k = 0; k < created; ++k) {
      r.created.emplace_back(fields.Next());
      r.trees.push_back(next_number(1, "tree flag") == 1);
    }
  }
  fields.ExpectEnd();
  if (at != per_path.ElementLength())
    throw Napi::TypeError::New(env, "perPath has more numbers than paths");
  UmountOptions umount;
  umount.busy_timeout_ms = IntArg(info, 3, "busyTimeoutMs");
  // The caller says the mounts are memory-only ones that ran here (applyStorages), no EBUSY retry
  // can sleep, no directory tree (which may lie on a disk) is to be removed, and each recorded
  // mount is still the one on top at its path (nobody stacked another, of any kind, on it): then
  // the release runs here too. Its result still comes through a promise, already settled: one
  // microtask, not the two thread hand-offs, and callers see one shape whatever ran where.
  bool trees = false;
  for (const StorageRelease& r : releases) {
    for (bool tree : r.trees) trees = trees || tree;
  }
  if (info[4].ToBoolean() && umount.busy_timeout_ms == 0 && n <= kMaxStoragesHere && !trees &&
      kata::RecordedOnTop(releases)) {
    auto settled = Napi::Promise::Deferred::New(env);
    settled.Resolve(RunJobHere(env, ReleaseData{std::move(releases), umount, {}, true}, ReleaseWork,
                               ReleasedStorages));
    return settled.Promise();
  }
  return StartJob(env, ReleaseData{std::move(releases), umount, {}}, ReleaseWork, ReleasedStorages);
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

Napi::Value Umount(const Napi::CallbackInfo& info) {
  struct Data {
    UmountArgs args;
    SysError error;
  };
  return StartJob(
      info.Env(), Data{ReadUmountArgs(info), {}},
      [](Data& d) { kata::Umount(d.args.target.c_str(), d.args.options, &d.error); },
      [](Napi::Env env, Data& d) { return ErrorValue(env, d.error); });
}

// isMountPoint(path): boolean | error descriptor
Napi::Value IsMountPoint(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0, "path");
  bool result = false;
  SysError error;
  if (!kata::IsMountPoint(path.c_str(), &result, &error)) return ErrorValue(info.Env(), error);
  return Napi::Boolean::New(info.Env(), result);
}

// mountIdAt(path): the ID (of the kind this process records) of the mount a walk to `path`
// reaches, or -errno. A number either way: the journal asks this of paths that do not exist yet
// (ENOENT) on every request, where building an error object cost more than the statx.
Napi::Value MountIdAtPath(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0, "path");
  uint64_t id = 0;
  SysError error;
  if (!kata::MountIdAt(path, &id, &error)) return Napi::Number::New(info.Env(), -error.err);
  return Napi::Number::New(info.Env(), static_cast<double>(id));
}

// recordedMountsPresent(paths: NUL-terminated fields, ids: Float64Array): boolean[] | error
// descriptor; whether each recorded mount is still in place (release.h RecordedMountsPresent).
Napi::Value RecordedMountsPresent(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fields fields(env, info[0], "paths");
  Napi::Float64Array ids = Numbers(env, info[1], 1, "ids");
  std::vector<MountRef> mounts(ids.ElementLength());
  for (size_t i = 0; i < mounts.size(); ++i) {
    mounts[i].path = fields.Next();
    mounts[i].id = static_cast<uint64_t>(Integer(env, ids, i, 0, 9007199254740991.0, "mount ID"));
  }
  fields.ExpectEnd();
  std::vector<bool> present;
  SysError error;
  if (!kata::RecordedMountsPresent(mounts, &present, &error)) return ErrorValue(env, error);
  Napi::Array out = Napi::Array::New(env, present.size());
  for (size_t i = 0; i < present.size(); ++i) out.Set(i, Napi::Boolean::New(env, present[i]));
  return out;
}

// crashPoint(): passes one of the crash points the journal's recovery tests kill the process at
// (fault.h); nothing unless KATA_STORAGE_FAULT_KILL_AT is set.
Napi::Value CrashPointHere(const Napi::CallbackInfo& info) {
  kata::CrashPoint();
  return info.Env().Undefined();
}

// effectiveMountApi(api, list): 'new' | 'legacy' | StorageError (an option the parser refuses)
Napi::Value EffectiveMountApi(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const MountApi api = MountApiArg(info, 0);
  MountOptions opts;
  std::string bad;
  const OptionError err = kata::ParseMountOptions(StringArg(info, 1, "options"), &opts, &bad);
  if (err != OptionError::kNone) return OptionErrorValue(env, err, std::move(bad));
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
  o.Set("overlayLowerdirPlus", s.fsopen && s.fsconfig && OverlayTakesLayersOneByOne());
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
                      {"mountIdAt", MountIdAtPath},
                      {"recordedMountsPresent", RecordedMountsPresent},
                      {"crashPoint", CrashPointHere},
                      {"effectiveMountApi", EffectiveMountApi},
                      {"newMountApiSupport", NewMountApiSupport},
                  });
  exports.Set("mountFlags", MountFlags(env));
  exports.Set("maxStoragesHere", Napi::Number::New(env, static_cast<double>(kMaxStoragesHere)));
}

const Registrar registrar(Export);

}  // namespace
}  // namespace binding
}  // namespace kata
