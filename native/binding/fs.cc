// Bindings for the filesystem helpers of the storage layer: argument conversion and results only.
#include "addon.h"
#include "beneath.h"
#include "fsgroup.h"
#include "hugepages.h"
#include "tree.h"

namespace kata {
namespace binding {
namespace {

// Where a walk beneath a root stopped: a result for lib/storage.ts to word, not an error.
Napi::Value Stop(Napi::Env env, const char* kind, const std::string& path) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("stop", kind);
  o.Set("path", path);
  return o;
}

// checkBeneath(root, rel): undefined | { stop: 'symlink' | 'notdir', path } | Error
// Synchronous: it is part of validating a request, which happens before anything is touched.
Napi::Value CheckBeneath(const Napi::CallbackInfo& info) {
  std::string root = PathArg(info, 0, "root");
  std::string rel = PathArg(info, 1, "rel");
  BeneathError result;
  std::string bad;
  SysError error;
  if (!kata::CheckBeneath(root, rel, &result, &bad, &error)) return ErrorValue(info.Env(), error);
  switch (result) {
    case BeneathError::kSymlink:
      return Stop(info.Env(), "symlink", bad);
    case BeneathError::kNotDir:
      return Stop(info.Env(), "notdir", bad);
    default:
      return info.Env().Undefined();
  }
}

class MakeBeneathJob : public Job {
 public:
  MakeBeneathJob(std::string root, std::string rel, unsigned mode, bool leaf_file)
      : root_(std::move(root)), rel_(std::move(rel)), mode_(mode), leaf_file_(leaf_file) {}
  void Execute() override { kata::MakeBeneath(root_, rel_, mode_, leaf_file_, &created_, &error_); }
  Napi::Value Complete(Napi::Env env) override {
    if (error_) return ErrorValue(env, error_);
    Napi::Array a = Napi::Array::New(env, created_.size());
    for (uint32_t i = 0; i < created_.size(); ++i) a.Set(i, created_[i]);
    return a;
  }

 private:
  std::string root_, rel_;
  unsigned mode_;
  bool leaf_file_;
  std::vector<std::string> created_;
  SysError error_;
};

// makeBeneath(root, rel, mode, leafFile): Promise<string[] | Error>
Napi::Value MakeBeneath(const Napi::CallbackInfo& info) {
  std::string root = PathArg(info, 0, "root");
  std::string rel = PathArg(info, 1, "rel");
  int32_t mode = IntArg(info, 2, "mode");
  bool leaf_file = BoolArg(info, 3, "leafFile");
  return Job::Start(info.Env(), new MakeBeneathJob(std::move(root), std::move(rel),
                                                   static_cast<unsigned>(mode) & 07777, leaf_file));
}

class RemoveTreeJob : public Job {
 public:
  explicit RemoveTreeJob(std::string path) : path_(std::move(path)) {}
  void Execute() override { kata::RemoveTree(path_, &error_); }
  Napi::Value Complete(Napi::Env env) override { return ErrorValue(env, error_); }

 private:
  std::string path_;
  SysError error_;
};

// removeTree(path): Promise<Error | undefined>
Napi::Value RemoveTree(const Napi::CallbackInfo& info) {
  return Job::Start(info.Env(), new RemoveTreeJob(PathArg(info, 0, "path")));
}

class RemoveEntryJob : public Job {
 public:
  explicit RemoveEntryJob(std::string path) : path_(std::move(path)) {}
  void Execute() override { kata::RemoveEntry(path_, &error_); }
  Napi::Value Complete(Napi::Env env) override { return ErrorValue(env, error_); }

 private:
  std::string path_;
  SysError error_;
};

// removeEntry(path): Promise<Error | undefined>
Napi::Value RemoveEntry(const Napi::CallbackInfo& info) {
  return Job::Start(info.Env(), new RemoveEntryJob(PathArg(info, 0, "path")));
}

class FsGroupJob : public Job {
 public:
  FsGroupJob(std::string path, unsigned gid, bool read_only, bool on_root_mismatch)
      : path_(std::move(path)),
        gid_(gid),
        read_only_(read_only),
        on_root_mismatch_(on_root_mismatch) {}
  void Execute() override {
    kata::ApplyFsGroup(path_, gid_, read_only_, on_root_mismatch_, &result_, &error_);
  }
  Napi::Value Complete(Napi::Env env) override {
    if (error_) return ErrorValue(env, error_);
    Napi::Object o = Napi::Object::New(env);
    o.Set("skipped", result_.skipped);
    o.Set("changed", static_cast<double>(result_.changed));
    return o;
  }

 private:
  std::string path_;
  unsigned gid_;
  bool read_only_, on_root_mismatch_;
  FsGroupResult result_;
  SysError error_;
};

// applyFsGroup(path, gid, readOnly, onRootMismatch): Promise<{ skipped, changed } | Error>
Napi::Value ApplyFsGroup(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0, "path");
  if (!info[1].IsNumber())
    throw Napi::TypeError::New(info.Env(), "The \"gid\" argument must be a number");
  const double gid = info[1].As<Napi::Number>().DoubleValue();
  bool read_only = BoolArg(info, 2, "readOnly");
  bool on_root_mismatch = BoolArg(info, 3, "onRootMismatch");
  return Job::Start(info.Env(), new FsGroupJob(std::move(path), static_cast<unsigned>(gid),
                                               read_only, on_root_mismatch));
}

class HugepagesJob : public Job {
 public:
  HugepagesJob(std::string sysfs, unsigned long page_kb, unsigned long pages)
      : sysfs_(std::move(sysfs)), page_kb_(page_kb), pages_(pages) {}
  void Execute() override {
    kata::EnsureHugepages(sysfs_, page_kb_, pages_, &previous_, &allocated_, &error_);
  }
  Napi::Value Complete(Napi::Env env) override {
    if (error_) return ErrorValue(env, error_);
    Napi::Object o = Napi::Object::New(env);
    o.Set("previous", static_cast<double>(previous_));
    o.Set("allocated", static_cast<double>(allocated_));
    return o;
  }

 private:
  std::string sysfs_;
  unsigned long page_kb_, pages_;
  unsigned long previous_ = 0, allocated_ = 0;
  SysError error_;
};

// ensureHugepages(sysfsRoot, pageKb, pages): Promise<{ previous, allocated } | Error>
Napi::Value EnsureHugepages(const Napi::CallbackInfo& info) {
  std::string sysfs = PathArg(info, 0, "sysfsRoot");
  if (!info[1].IsNumber() || !info[2].IsNumber()) {
    throw Napi::TypeError::New(info.Env(),
                               "The \"pageKb\" and \"pages\" arguments must be numbers");
  }
  const double page_kb = info[1].As<Napi::Number>().DoubleValue();
  const double pages = info[2].As<Napi::Number>().DoubleValue();
  return Job::Start(info.Env(),
                    new HugepagesJob(std::move(sysfs), static_cast<unsigned long>(page_kb),
                                     static_cast<unsigned long>(pages)));
}

void Export(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {
                      {"checkBeneath", CheckBeneath},
                      {"makeBeneath", MakeBeneath},
                      {"removeTree", RemoveTree},
                      {"removeEntry", RemoveEntry},
                      {"applyFsGroup", ApplyFsGroup},
                      {"ensureHugepages", EnsureHugepages},
                  });
}

const Registrar registrar(Export);

}  // namespace
}  // namespace binding
}  // namespace kata
