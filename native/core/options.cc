#include "options.h"

#include <sys/mount.h>
#include <unistd.h>

namespace kata {
namespace {

enum class Kind : unsigned char { kSet, kClear, kPropagation, kRecursive, kRefused };

struct Word {
  std::string_view word;
  Kind kind;
  unsigned long value;  // kSet/kClear/kRecursive: the MS_* flag; kPropagation: MS_* | maybe MS_REC
};

// Kata's set/clear table (agent mount.rs FLAGS), plus lazytime and nosymfollow; the propagation
// words; and "loop", which needs losetup, so an agent must refuse it rather than half-handle it.
constexpr Word kWords[] = {
    {"defaults", Kind::kSet, 0},
    {"ro", Kind::kSet, MS_RDONLY},
    {"rw", Kind::kClear, MS_RDONLY},
    {"suid", Kind::kClear, MS_NOSUID},
    {"nosuid", Kind::kSet, MS_NOSUID},
    {"dev", Kind::kClear, MS_NODEV},
    {"nodev", Kind::kSet, MS_NODEV},
    {"exec", Kind::kClear, MS_NOEXEC},
    {"noexec", Kind::kSet, MS_NOEXEC},
    {"sync", Kind::kSet, MS_SYNCHRONOUS},
    {"async", Kind::kClear, MS_SYNCHRONOUS},
    {"dirsync", Kind::kSet, MS_DIRSYNC},
    {"remount", Kind::kSet, MS_REMOUNT},
    {"mand", Kind::kSet, MS_MANDLOCK},
    {"nomand", Kind::kClear, MS_MANDLOCK},
    {"atime", Kind::kClear, MS_NOATIME},
    {"noatime", Kind::kSet, MS_NOATIME},
    {"diratime", Kind::kClear, MS_NODIRATIME},
    {"nodiratime", Kind::kSet, MS_NODIRATIME},
    {"relatime", Kind::kSet, MS_RELATIME},
    {"norelatime", Kind::kClear, MS_RELATIME},
    {"strictatime", Kind::kSet, MS_STRICTATIME},
    {"nostrictatime", Kind::kClear, MS_STRICTATIME},
    {"iversion", Kind::kSet, MS_I_VERSION},
    {"noiversion", Kind::kClear, MS_I_VERSION},
    {"silent", Kind::kSet, MS_SILENT},
    {"loud", Kind::kClear, MS_SILENT},
    {"bind", Kind::kSet, MS_BIND},
    {"rbind", Kind::kSet, MS_BIND | MS_REC},
    {"lazytime", Kind::kSet, MS_LAZYTIME},
    {"nolazytime", Kind::kClear, MS_LAZYTIME},
    {"nosymfollow", Kind::kSet, MS_NOSYMFOLLOW},
    {"symfollow", Kind::kClear, MS_NOSYMFOLLOW},
    {"private", Kind::kPropagation, MS_PRIVATE},
    {"rprivate", Kind::kPropagation, MS_PRIVATE | MS_REC},
    {"shared", Kind::kPropagation, MS_SHARED},
    {"rshared", Kind::kPropagation, MS_SHARED | MS_REC},
    {"slave", Kind::kPropagation, MS_SLAVE},
    {"rslave", Kind::kPropagation, MS_SLAVE | MS_REC},
    {"unbindable", Kind::kPropagation, MS_UNBINDABLE},
    {"runbindable", Kind::kPropagation, MS_UNBINDABLE | MS_REC},
    // Attributes only the new mount API can apply to a whole tree (runc's names).
    {"rro", Kind::kRecursive, MS_RDONLY},
    {"rnosuid", Kind::kRecursive, MS_NOSUID},
    {"rnodev", Kind::kRecursive, MS_NODEV},
    {"rnoexec", Kind::kRecursive, MS_NOEXEC},
    {"loop", Kind::kRefused, 0},
};

// Parsing is on the hot path of every mount and of parseMountOptions (a million calls a
// second from JS is the target). A linear scan of the table costs ~40 compares per word, and data
// words ("size=65536k") always pay the whole scan; an open-addressed index built at compile time
// finds a word, or knows it is data, in one or two compares.
constexpr size_t kLongestWord = 13;  // "nostrictatime"
constexpr size_t kSlots = 128;       // a power of two, about three times the words

constexpr size_t Hash(std::string_view w) {
  return (w.size() * 7 + static_cast<unsigned char>(w[0]) * 31 +
          static_cast<unsigned char>(w[w.size() - 1])) &
         (kSlots - 1);
}

struct Index {
  signed char slot[kSlots];  // index into kWords, -1 when empty
};

constexpr Index BuildIndex() {
  Index index{};
  for (size_t h = 0; h < kSlots; ++h) index.slot[h] = -1;
  for (size_t i = 0; i < sizeof(kWords) / sizeof(kWords[0]); ++i) {
    size_t h = Hash(kWords[i].word);
    while (index.slot[h] != -1) h = (h + 1) & (kSlots - 1);
    index.slot[h] = static_cast<signed char>(i);
  }
  return index;
}
constexpr Index kIndex = BuildIndex();

constexpr bool LongestWordIsRight() {
  size_t longest = 0;
  for (const Word& entry : kWords)
    longest = entry.word.size() > longest ? entry.word.size() : longest;
  return longest == kLongestWord;
}
static_assert(LongestWordIsRight(), "kLongestWord must be the longest word of kWords");
static_assert(sizeof(kWords) / sizeof(kWords[0]) < kSlots / 2, "keep the index sparse");

const Word* Lookup(std::string_view word) {
  if (word.size() > kLongestWord) return nullptr;
  // Terminates: the index always has empty slots.
  for (size_t h = Hash(word);; h = (h + 1) & (kSlots - 1)) {
    const int i = kIndex.slot[h];
    if (i < 0) return nullptr;
    if (kWords[i].word == word) return &kWords[i];
  }
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// A data word as the filesystem gets it: quotes that protect no comma are dropped (size="1m" is
// size=1m through both APIs); around a comma they stay, for mount(2)'s sake.
void AppendData(std::string_view word, std::string* data) {
  const size_t mark = data->size();
  if (!data->empty()) data->push_back(',');
  if (word.find('"') == std::string_view::npos || word.find(',') != std::string_view::npos) {
    data->append(word);
    return;
  }
  for (size_t i = 0; i < word.size(); ++i) {
    if (word[i] == '\\' && i + 1 < word.size()) {
      data->push_back(word[i++]);  // an escaped quote is the filesystem's, not ours
    } else if (word[i] == '"') {
      continue;
    }
    data->push_back(word[i]);
  }
  if (data->size() == mark + (mark > 0 ? 1 : 0)) data->resize(mark);  // the word was only quotes
}

// Returns false (and fills `bad`) when the word is refused.
bool ApplyWord(std::string_view word, MountOptions* out, OptionError* err, std::string* bad) {
  if (word.empty()) return true;
  if (IsSpace(word.front()) || IsSpace(word.back())) {
    *err = OptionError::kSpace;
    if (bad) bad->assign(word);
    return false;
  }
  // Read the word as the tokenizer did: a quote still open or a backslash escaping nothing at
  // its end would swallow the next word when the data is split again (fsconfig, overlayfs).
  bool quoted = false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (word[i] == '\\') {
      if (i + 1 == word.size()) {
        *err = OptionError::kEscape;
        if (bad) bad->assign(word);
        return false;
      }
      ++i;
    } else if (word[i] == '"') {
      quoted = !quoted;
    }
  }
  if (quoted) {
    *err = OptionError::kQuote;
    if (bad) bad->assign(word);
    return false;
  }
  if (const Word* w = Lookup(word)) {
    switch (w->kind) {
      case Kind::kSet:
        out->flags |= w->value;
        out->cleared &= ~w->value;
        return true;
      case Kind::kClear:
        out->flags &= ~w->value;
        out->cleared |= w->value;
        return true;
      case Kind::kPropagation:
        out->propagation = w->value;
        return true;
      case Kind::kRecursive:
        out->recursive_flags |= w->value;
        if (out->recursive_word.empty()) out->recursive_word.assign(word);
        return true;
      case Kind::kRefused:
        *err = OptionError::kLoop;
        if (bad) bad->assign(word);
        return false;
    }
  }
  AppendData(word, &out->data);
  return true;
}

}  // namespace

bool NextOptionWord(std::string_view list, size_t* pos, std::string_view* word) {
  const char* const p = list.data();
  const size_t n = list.size();
  size_t i = *pos;
  if (i > n) return false;
  const size_t start = i;
  bool quoted = false;
  // Skip ordinary bytes in a tight loop (parsing is on every mount's path).
  for (;; ++i) {
    while (i < n && p[i] != ',' && p[i] != '"' && p[i] != '\\' && p[i] != '\0') ++i;
    if (i >= n || p[i] == '\0') break;  // an element boundary also ends a quote left open
    if (p[i] == '"') {
      quoted = !quoted;
    } else if (p[i] == '\\') {
      if (i + 1 < n && p[i + 1] != '\0') ++i;  // the escaped byte belongs to the word
    } else if (!quoted) {
      break;  // a comma outside quotes
    }
  }
  *word = std::string_view(p + start, i - start);
  *pos = i + 1;
  return true;
}

size_t MaxMountDataLength() {
  static const size_t page = [] {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<size_t>(p) : size_t{4096};
  }();
  return page - 1;
}

OptionError ParseMountOptions(std::string_view list, MountOptions* out, std::string* bad) {
  // clear() rather than a fresh MountOptions: a caller that reuses `out` keeps the data buffer.
  out->flags = 0;
  out->propagation = 0;
  out->cleared = 0;
  out->recursive_flags = 0;
  out->recursive_word.clear();
  out->data.clear();
  OptionError err = OptionError::kNone;
  std::string_view word;
  for (size_t pos = 0; NextOptionWord(list, &pos, &word);) {
    if (!ApplyWord(word, out, &err, bad)) return err;
  }
  // A recursive attribute holds for the mount itself too, whatever word came after it.
  out->flags |= out->recursive_flags;
  out->cleared &= ~out->recursive_flags;
  if (out->data.size() > MaxMountDataLength()) {
    std::string parent, compacted;
    if (CompactLowerdir(out->data, &parent, &compacted) &&
        compacted.size() <= MaxMountDataLength()) {
      return OptionError::kNone;
    }
    if (bad) *bad = out->data;
    return OptionError::kTooLong;
  }
  return OptionError::kNone;
}

const char* OptionErrorReason(OptionError e) {
  switch (e) {
    case OptionError::kNone:
      return "";
    case OptionError::kLoop:
      return "is not supported: it needs a loop device set up first (losetup), which this agent "
             "does not do; attach the image as a block device instead";
    case OptionError::kTooLong:
      return "does not fit the one page (less its NUL; 4095 bytes with 4 KiB pages) the kernel "
             "copies, even with overlayfs lowerdir= layers counted relative to their common parent "
             "directory (as both mount APIs pass them): mount fewer layers or options, or shorter "
             "paths";
    case OptionError::kSpace:
      return "starts or ends with whitespace; option words are separated by commas only, remove "
             "the spaces";
    case OptionError::kQuote:
      return "has an unclosed double quote; quotes must come in pairs around a value holding "
             "commas";
    case OptionError::kEscape:
      return "ends with a backslash that escapes nothing (it would join the next word); write \\\\ "
             "for a backslash";
    case OptionError::kRecursiveLegacy:
      return "is not supported by mount(2): only the new mount API (mount_setattr with "
             "AT_RECURSIVE) reaches the mounts below an rbind, and this mount goes through "
             "mount(2) (mountApi 'legacy', a remount, or a kernel without the new API); use "
             "mountApi 'new', or bind instead of rbind";
  }
  return "is refused";
}

bool RecursiveNeedsNewApi(const MountOptions& opts) {
  return opts.recursive_flags != 0 && (opts.flags & MS_BIND) && (opts.flags & MS_REC);
}

void SplitLowerdir(std::string_view value, std::vector<std::string_view>* entries) {
  entries->clear();
  size_t start = 0;
  for (size_t i = 0; i <= value.size(); ++i) {
    if (i < value.size() && value[i] == '\\') {
      ++i;  // the escaped byte belongs to the entry
    } else if (i == value.size() || value[i] == ':') {
      entries->push_back(value.substr(start, i - start));
      start = i + 1;
    }
  }
}

namespace {

constexpr std::string_view kLowerdir = "lowerdir=";

bool IsLowerdir(std::string_view word) { return word.substr(0, kLowerdir.size()) == kLowerdir; }

// True when `entry` lies strictly below `dir` (no trailing '/'; "" is the root).
bool Below(std::string_view entry, std::string_view dir) {
  return entry.size() > dir.size() + 1 && entry.substr(0, dir.size()) == dir &&
         entry[dir.size()] == '/';
}

}  // namespace

bool CompactLowerdir(std::string_view data, std::string* parent, std::string* compacted) {
  std::string_view word;
  std::vector<std::string_view> entries;
  std::string_view common;
  bool first = true;
  for (size_t pos = 0; NextOptionWord(data, &pos, &word);) {
    if (!IsLowerdir(word)) continue;
    SplitLowerdir(word.substr(kLowerdir.size()), &entries);
    for (std::string_view e : entries) {
      if (e.empty()) continue;  // the data-only marker
      if (e[0] != '/') return false;
      if (first) {
        common = e.substr(0, e.rfind('/'));
        first = false;
      }
      while (!common.empty() && !Below(e, common)) common = common.substr(0, common.rfind('/'));
      if (common.empty()) return false;
    }
  }
  if (first || common.find('\\') != std::string_view::npos) return false;
  parent->assign(common);
  compacted->clear();
  for (size_t pos = 0; NextOptionWord(data, &pos, &word);) {
    if (word.empty()) continue;
    if (!compacted->empty()) compacted->push_back(',');
    if (!IsLowerdir(word)) {
      compacted->append(word);
      continue;
    }
    compacted->append(kLowerdir);
    SplitLowerdir(word.substr(kLowerdir.size()), &entries);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) compacted->push_back(':');
      if (!entries[i].empty()) compacted->append(entries[i].substr(common.size() + 1));
    }
  }
  return true;
}

}  // namespace kata
