// Bindings for the filesystem helpers of the storage layer: argument conversion and results only.
#include "addon.h"
#include "beneath.h"
#include "filelock.h"
#include "fsgroup.h"
#include "hugepages.h"
#include "tree.h"

namespace kata {
namespace binding {
namespace {

// Where a walk beneath a root stopped: a result for lib/storage/validate.ts to word, not an error.
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

// lockFile(fd): true (this descriptor holds the lock now) | false (another open holds it) | Error
Napi::Value LockFile(const Napi::CallbackInfo& info) {
  const int fd = IntArg(info, 0, "fd");
  bool elsewhere = false;
  SysError error;
  if (kata::TryLockFile(fd, &elsewhere, &error)) return Napi::Boolean::New(info.Env(), true);
  if (elsewhere) return Napi::Boolean::New(info.Env(), false);
  return ErrorValue(info.Env(), error);
}

// makeBeneath(root, rel, mode, leafFile): Promise<string[] | Error>
Napi::Value MakeBeneath(const Napi::CallbackInfo& info) {
  struct Data {
    std::string root, rel;
    unsigned mode = 0;
    bool leaf_file = false;
    std::vector<std::string> created;
    SysError error;
  };
  Data d;
  d.root = PathArg(info, 0, "root");
  d.rel = PathArg(info, 1, "rel");
  d.mode = static_cast<unsigned>(IntArg(info, 2, "mode")) & 07777;
  d.leaf_file = BoolArg(info, 3, "leafFile");
  return StartJob(
      info.Env(), std::move(d),
      [](Data& d) { kata::MakeBeneath(d.root, d.rel, d.mode, d.leaf_file, &d.created, &d.error); },
      [](Napi::Env env, Data& d) -> Napi::Value {
        if (d.error) return ErrorValue(env, d.error);
        Napi::Array a = Napi::Array::New(env, d.created.size());
        for (uint32_t i = 0; i < d.created.size(); ++i) a.Set(i, d.created[i]);
        return a;
      });
}

struct PathData {
  explicit PathData(std::string p) : path(std::move(p)) {}
  std::string path;
  SysError error;
};

Napi::Value ErrorOf(Napi::Env env, PathData& d) { return ErrorValue(env, d.error); }

// removeTree(path): Promise<Error | undefined>
Napi::Value RemoveTree(const Napi::CallbackInfo& info) {
  return StartJob(
      info.Env(), PathData{PathArg(info, 0, "path")},
      [](PathData& d) { kata::RemoveTree(d.path, &d.error); }, ErrorOf);
}

// removeEntry(path): Promise<Error | undefined>
Napi::Value RemoveEntry(const Napi::CallbackInfo& info) {
  return StartJob(
      info.Env(), PathData{PathArg(info, 0, "path")},
      [](PathData& d) { kata::RemoveEntry(d.path, &d.error); }, ErrorOf);
}

// applyFsGroup(path, gid, readOnly, onRootMismatch): Promise<{ skipped, changed } | Error>
Napi::Value ApplyFsGroup(const Napi::CallbackInfo& info) {
  struct Data {
    std::string path;
    unsigned gid = 0;
    bool read_only = false, on_root_mismatch = false;
    FsGroupResult result;
    SysError error;
  };
  std::string path = PathArg(info, 0, "path");
  if (!info[1].IsNumber())
    throw Napi::TypeError::New(info.Env(), "The \"gid\" argument must be a number");
  const double gid = info[1].As<Napi::Number>().DoubleValue();
  Data d;
  d.path = std::move(path);
  d.gid = static_cast<unsigned>(gid);
  d.read_only = BoolArg(info, 2, "readOnly");
  d.on_root_mismatch = BoolArg(info, 3, "onRootMismatch");
  return StartJob(
      info.Env(), std::move(d),
      [](Data& d) {
        kata::ApplyFsGroup(d.path, d.gid, d.read_only, d.on_root_mismatch, &d.result, &d.error);
      },
      [](Napi::Env env, Data& d) -> Napi::Value {
        if (d.error) return ErrorValue(env, d.error);
        Napi::Object o = Napi::Object::New(env);
        o.Set("skipped", d.result.skipped);
        o.Set("changed", static_cast<double>(d.result.changed));
        return o;
      });
}

// ensureHugepages(sysfsRoot, pageKb, pages): Promise<{ previous, allocated } | Error>
Napi::Value EnsureHugepages(const Napi::CallbackInfo& info) {
  struct Data {
    std::string sysfs;
    unsigned long page_kb = 0, pages = 0;
    unsigned long previous = 0, allocated = 0;
    SysError error;
  };
  std::string sysfs = PathArg(info, 0, "sysfsRoot");
  if (!info[1].IsNumber() || !info[2].IsNumber()) {
    throw Napi::TypeError::New(info.Env(),
                               "The \"pageKb\" and \"pages\" arguments must be numbers");
  }
  Data d;
  d.sysfs = std::move(sysfs);
  d.page_kb = static_cast<unsigned long>(info[1].As<Napi::Number>().DoubleValue());
  d.pages = static_cast<unsigned long>(info[2].As<Napi::Number>().DoubleValue());
  return StartJob(
      info.Env(), std::move(d),
      [](Data& d) {
        kata::EnsureHugepages(d.sysfs, d.page_kb, d.pages, &d.previous, &d.allocated, &d.error);
      },
      [](Napi::Env env, Data& d) -> Napi::Value {
        if (d.error) return ErrorValue(env, d.error);
        Napi::Object o = Napi::Object::New(env);
        o.Set("previous", static_cast<double>(d.previous));
        o.Set("allocated", static_cast<double>(d.allocated));
        return o;
      });
}

void Export(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {
                      {"checkBeneath", CheckBeneath},
                      {"makeBeneath", MakeBeneath},
                      {"removeTree", RemoveTree},
                      {"removeEntry", RemoveEntry},
                      {"lockFile", LockFile},
                      {"applyFsGroup", ApplyFsGroup},
                      {"ensureHugepages", EnsureHugepages},
                  });
}

const Registrar registrar(Export);

}  // namespace
}  // namespace binding
}  // namespace kata
