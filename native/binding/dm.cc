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

// dmVerityCreate(control, name, sectors, params, node): Promise<{ major, minor } | Error>
Napi::Value DmVerityCreate(const Napi::CallbackInfo& info) {
  struct Data {
    std::string control, name;
    uint64_t sectors = 0;
    std::string params, node;
    unsigned major = 0, minor = 0;
    SysError error;
  };
  Data d;
  d.control = PathArg(info, 0, "control");
  d.name = PathArg(info, 1, "name");
  d.sectors = U64Arg(info, 2, "sectors");
  d.params = PathArg(info, 3, "params");
  d.node = PathArg(info, 4, "node");
  return StartJob(
      info.Env(), std::move(d),
      [](Data& d) {
        DmCreateVerity(d.control, d.name, d.sectors, d.params, d.node, &d.major, &d.minor,
                       &d.error);
      },
      [](Napi::Env env, Data& d) -> Napi::Value {
        if (d.error) return ErrorValue(env, d.error);
        Napi::Object o = Napi::Object::New(env);
        o.Set("major", d.major);
        o.Set("minor", d.minor);
        return o;
      });
}

// dmRemove(control, name, node, deferred): Promise<Error | undefined>
Napi::Value DmRemove(const Napi::CallbackInfo& info) {
  struct Data {
    std::string control, name, node;
    bool deferred = false;
    SysError error;
  };
  Data d;
  d.control = PathArg(info, 0, "control");
  d.name = PathArg(info, 1, "name");
  d.node = PathArg(info, 2, "node");
  d.deferred = BoolArg(info, 3, "deferred");
  return StartJob(
      info.Env(), std::move(d),
      [](Data& d) { kata::DmRemove(d.control, d.name, d.node, d.deferred, &d.error); },
      [](Napi::Env env, Data& d) { return ErrorValue(env, d.error); });
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
