// Bindings for device-mapper verity: argument conversion and results only.
#include "dm.h"
#include "addon.h"

namespace kata {
namespace binding {
namespace {

uint64_t U64Arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(),
                               std::string("The \"") + name + "\" argument must be a number");
  }
  const double d = info[i].As<Napi::Number>().DoubleValue();
  // Callers check Number.isSafeInteger; anything else becomes 0, which every field refuses.
  if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d)))
    return 0;
  return static_cast<uint64_t>(d);
}

// verityTable(hashtype, hash, blocknum, blocksize, hashsize, offset, salt, hashType, noSuperblock,
// dataDev): { params, sectors } | { code: 'ERR_INVALID_STORAGE', value: field }
Napi::Value VerityTable(const Napi::CallbackInfo& info) {
  VerityInfo v;
  v.hashtype = StringArg(info, 0, "hashtype");
  v.hash = StringArg(info, 1, "hash");
  v.blocknum = U64Arg(info, 2, "blocknum");
  v.blocksize = U64Arg(info, 3, "blocksize");
  v.hashsize = U64Arg(info, 4, "hashsize");
  v.offset = U64Arg(info, 5, "offset");
  v.salt = StringArg(info, 6, "salt");
  const uint64_t hash_type = U64Arg(info, 7, "hashType");
  v.hash_type = hash_type > 1 ? 2 : static_cast<uint32_t>(hash_type);
  v.no_superblock = BoolArg(info, 8, "noSuperblock");
  const std::string data_dev = StringArg(info, 9, "dataDev");
  std::string params;
  uint64_t sectors = 0;
  const char* bad = "";
  if (!kata::VerityTable(v, data_dev, &params, &sectors, &bad)) {
    return CodeError(info.Env(), "ERR_INVALID_STORAGE", bad);
  }
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("params", params);
  o.Set("sectors", static_cast<double>(sectors));
  return o;
}

class CreateJob : public Job {
 public:
  CreateJob(std::string control, std::string name, uint64_t sectors, std::string params,
            std::string node)
      : control_(std::move(control)),
        name_(std::move(name)),
        sectors_(sectors),
        params_(std::move(params)),
        node_(std::move(node)) {}
  void Execute() override {
    DmCreateVerity(control_, name_, sectors_, params_, node_, &major_, &minor_, &error_);
  }
  Napi::Value Complete(Napi::Env env) override {
    if (error_) return ErrorValue(env, error_);
    Napi::Object o = Napi::Object::New(env);
    o.Set("major", major_);
    o.Set("minor", minor_);
    return o;
  }

 private:
  std::string control_, name_;
  uint64_t sectors_;
  std::string params_, node_;
  unsigned major_ = 0, minor_ = 0;
  SysError error_;
};

// dmVerityCreate(control, name, sectors, params, node): Promise<{ major, minor } | Error>
Napi::Value DmVerityCreate(const Napi::CallbackInfo& info) {
  std::string control = PathArg(info, 0, "control");
  std::string name = PathArg(info, 1, "name");
  const uint64_t sectors = U64Arg(info, 2, "sectors");
  std::string params = PathArg(info, 3, "params");
  std::string node = PathArg(info, 4, "node");
  return Job::Start(info.Env(), new CreateJob(std::move(control), std::move(name), sectors,
                                              std::move(params), std::move(node)));
}

class RemoveJob : public Job {
 public:
  RemoveJob(std::string control, std::string name, std::string node, bool deferred)
      : control_(std::move(control)),
        name_(std::move(name)),
        node_(std::move(node)),
        deferred_(deferred) {}
  void Execute() override { kata::DmRemove(control_, name_, node_, deferred_, &error_); }
  Napi::Value Complete(Napi::Env env) override { return ErrorValue(env, error_); }

 private:
  std::string control_, name_, node_;
  bool deferred_;
  SysError error_;
};

// dmRemove(control, name, node, deferred): Promise<Error | undefined>
Napi::Value DmRemove(const Napi::CallbackInfo& info) {
  std::string control = PathArg(info, 0, "control");
  std::string name = PathArg(info, 1, "name");
  std::string node = PathArg(info, 2, "node");
  const bool deferred = BoolArg(info, 3, "deferred");
  return Job::Start(info.Env(),
                    new RemoveJob(std::move(control), std::move(name), std::move(node), deferred));
}

void Export(Napi::Env env, Napi::Object exports) {
  ExportFunctions(env, exports,
                  {
                      {"verityTable", VerityTable},
                      {"dmVerityCreate", DmVerityCreate},
                      {"dmRemove", DmRemove},
                  });
}

const Registrar registrar(Export);

}  // namespace
}  // namespace binding
}  // namespace kata
