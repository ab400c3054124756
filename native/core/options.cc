#include "options.h"

#include <sys/mount.h>
#include <unistd.h>

#include <cstring>

namespace kata {
namespace {

struct FlagWord {
  const char* word;
  bool clear;  // true: the word removes `flag` ("rw" clears MS_RDONLY)
  unsigned long flag;
};

// Kata's set/clear table (agent mount.rs FLAGS), plus lazytime and nosymfollow.
constexpr FlagWord kFlagWords[] = {
    {"defaults", false, 0},
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"suid", true, MS_NOSUID},
    {"nosuid", false, MS_NOSUID},
    {"dev", true, MS_NODEV},
    {"nodev", false, MS_NODEV},
    {"exec", true, MS_NOEXEC},
    {"noexec", false, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},
    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},
    {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},
    {"nomand", true, MS_MANDLOCK},
    {"atime", true, MS_NOATIME},
    {"noatime", false, MS_NOATIME},
    {"diratime", true, MS_NODIRATIME},
    {"nodiratime", false, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME},
    {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME},
    {"nostrictatime", true, MS_STRICTATIME},
    {"iversion", false, MS_I_VERSION},
    {"noiversion", true, MS_I_VERSION},
    {"silent", false, MS_SILENT},
    {"loud", true, MS_SILENT},
    {"bind", false, MS_BIND},
    {"rbind", false, MS_BIND | MS_REC},
    {"lazytime", false, MS_LAZYTIME},
    {"nolazytime", true, MS_LAZYTIME},
    {"nosymfollow", false, MS_NOSYMFOLLOW},
    {"symfollow", true, MS_NOSYMFOLLOW},
};

struct PropagationWord {
  const char* word;
  unsigned long value;
};

constexpr PropagationWord kPropagationWords[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

// Attributes only the new mount API can apply to a whole tree (runc's names).
constexpr FlagWord kRecursiveWords[] = {
    {"rro", false, MS_RDONLY},
    {"rnosuid", false, MS_NOSUID},
    {"rnodev", false, MS_NODEV},
    {"rnoexec", false, MS_NOEXEC},
};

template <typename T, size_t N>
const T* Lookup(const T (&table)[N], std::string_view word) {
  for (const T& entry : table) {
    if (word.size() == std::strlen(entry.word) && word.compare(entry.word) == 0) return &entry;
  }
  return nullptr;
}

// Returns false (and fills `bad`) when the word is refused.
bool ApplyWord(std::string_view word, MountOptions* out, OptionError* err, std::string* bad) {
  if (word.empty()) return true;
  if (const FlagWord* f = Lookup(kFlagWords, word)) {
    if (f->clear) {
      out->flags &= ~f->flag;
    } else {
      out->flags |= f->flag;
    }
    return true;
  }
  if (const FlagWord* r = Lookup(kRecursiveWords, word)) {
    out->recursive_flags |= r->flag;
    if (out->recursive_word.empty()) out->recursive_word.assign(word);
    return true;
  }
  if (const PropagationWord* p = Lookup(kPropagationWords, word)) {
    out->propagation = p->value;
    return true;
  }
  if (word == "loop") {
    *err = OptionError::kLoop;
    if (bad) bad->assign(word);
    return false;
  }
  if (!out->data.empty()) out->data.push_back(',');
  out->data.append(word);
  return true;
}

}  // namespace

size_t MaxMountDataLength() {
  static const size_t page = [] {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<size_t>(p) : size_t{4096};
  }();
  return page - 1;
}

OptionError ParseMountOptions(std::string_view list, MountOptions* out, std::string* bad) {
  *out = MountOptions{};
  OptionError err = OptionError::kNone;
  size_t start = 0;
  bool quoted = false;
  for (size_t i = 0; i <= list.size(); ++i) {
    const char c = i < list.size() ? list[i] : '\0';
    if (c == '"') quoted = !quoted;
    // An element boundary also ends any quote left open inside that element.
    if (c == '\0') quoted = false;
    if ((c == ',' && !quoted) || c == '\0') {
      if (!ApplyWord(list.substr(start, i - start), out, &err, bad)) return err;
      start = i + 1;
    }
  }
  if (out->data.size() > MaxMountDataLength()) {
    if (bad) *bad = out->data;
    return OptionError::kTooLong;
  }
  return OptionError::kNone;
}

}  // namespace kata
