#include <sys/mount.h>

#include <string>

#include "check.h"
#include "options.h"

using kata::MountOptions;
using kata::OptionError;
using kata::ParseMountOptions;

namespace {

std::string Join(std::initializer_list<const char*> words) {
  std::string s;
  bool first = true;
  for (const char* w : words) {
    if (!first) s.push_back('\0');
    s += w;
    first = false;
  }
  return s;
}

unsigned long All(const std::string& list, std::string* data) {
  MountOptions o;
  CHECK(ParseMountOptions(list, &o, nullptr) == OptionError::kNone);
  *data = o.data;
  return o.flags | o.propagation;
}

}  // namespace

KATA_TEST(kata_vectors) {
  std::string d;
  CHECK_EQ(All("", &d), 0ul);
  CHECK_EQ(d, std::string());
  CHECK_EQ(All(Join({"ro"}), &d), static_cast<unsigned long>(MS_RDONLY));
  CHECK_EQ(All(Join({"rw"}), &d), 0ul);
  CHECK_EQ(All(Join({"ro", "rw"}), &d), 0ul);
  CHECK_EQ(All(Join({"ro", "nodev"}), &d), static_cast<unsigned long>(MS_RDONLY | MS_NODEV));
  CHECK_EQ(All(Join({"option1", "nodev", "option2"}), &d), static_cast<unsigned long>(MS_NODEV));
  CHECK_EQ(d, std::string("option1,option2"));
  CHECK_EQ(All(Join({"rbind", "", "ro"}), &d),
           static_cast<unsigned long>(MS_BIND | MS_REC | MS_RDONLY));
  CHECK_EQ(All(Join({"dev", "ro", "defaults", "data-option"}), &d),
           static_cast<unsigned long>(MS_RDONLY));
  CHECK_EQ(d, std::string("data-option"));
}

KATA_TEST(propagation_apart) {
  MountOptions o;
  CHECK(ParseMountOptions(Join({"rbind", "rslave"}), &o, nullptr) == OptionError::kNone);
  CHECK_EQ(o.flags, static_cast<unsigned long>(MS_BIND | MS_REC));
  CHECK_EQ(o.propagation, static_cast<unsigned long>(MS_SLAVE | MS_REC));
}

KATA_TEST(quotes_and_refusals) {
  MountOptions o;
  std::string bad;
  CHECK(ParseMountOptions("context=\"a,b\",ro", &o, &bad) == OptionError::kNone);
  CHECK_EQ(o.data, std::string("context=\"a,b\""));
  CHECK(ParseMountOptions(Join({"ro", "loop"}), &o, &bad) == OptionError::kLoop);
  CHECK_EQ(bad, std::string("loop"));
  CHECK(ParseMountOptions(std::string(kata::MaxMountDataLength() + 1, 'x'), &o, &bad) ==
        OptionError::kTooLong);
  CHECK(ParseMountOptions(std::string(kata::MaxMountDataLength(), 'x'), &o, &bad) ==
        OptionError::kNone);
}

KATA_TEST(lowerdir_split_at_unescaped_colons) {
  std::vector<std::string_view> e;
  kata::SplitLowerdir("/a:/b\\:c::/d", &e);
  CHECK_EQ(e.size(), size_t{4});
  CHECK_EQ(std::string(e[0]), std::string("/a"));
  CHECK_EQ(std::string(e[1]), std::string("/b\\:c"));
  CHECK(e[2].empty());  // "::": the data-only layers follow
  CHECK_EQ(std::string(e[3]), std::string("/d"));
}

// Many layers under one long directory: refused only when even their names relative to it do
// not fit; compacting names the parent and keeps every other word.
KATA_TEST(lowerdir_compacted_to_its_parent) {
  const std::string dir = "/run/kata-containers/" + std::string(64, 'f') + "/multi-layer";
  auto layers = [&](int n) {
    std::string v = "lowerdir=";
    for (int i = 0; i < n; ++i) v += (i ? ":" : "") + dir + "/lower-" + std::to_string(i);
    return v;
  };
  MountOptions o;
  std::string bad, parent, compacted;
  const std::string many =
      std::string("ro") + '\0' + "upperdir=" + dir + "/upper/upper" + '\0' + layers(128);
  CHECK(many.size() > kata::MaxMountDataLength());
  CHECK(ParseMountOptions(many, &o, &bad) == OptionError::kNone);
  CHECK(kata::CompactLowerdir(o.data, &parent, &compacted));
  CHECK_EQ(parent, dir);
  CHECK_EQ(compacted.substr(0, compacted.find(",lowerdir=")), "upperdir=" + dir + "/upper/upper");
  CHECK_EQ(compacted.substr(compacted.find(",lowerdir=") + 10, 16),
           std::string("lower-0:lower-1:"));
  CHECK(ParseMountOptions(layers(600), &o, &bad) == OptionError::kTooLong);
  CHECK_EQ(bad, layers(600));
  // Layers in two directories share their grandparent; a relative layer or "/" as the only
  // common parent leaves nothing to compact.
  CHECK(kata::CompactLowerdir("lowerdir=/x/y/a:/x/z/b::/x/d", &parent, &compacted));
  CHECK_EQ(parent, std::string("/x"));
  CHECK_EQ(compacted, std::string("lowerdir=y/a:z/b::d"));
  CHECK(!kata::CompactLowerdir("lowerdir=/x/a:rel", &parent, &compacted));
  CHECK(!kata::CompactLowerdir("lowerdir=/x/a:/y/b", &parent, &compacted));
  CHECK(!kata::CompactLowerdir("lowerdir=/x\\:1/a:/x\\:1/b", &parent, &compacted));
  CHECK(!kata::CompactLowerdir("size=1m", &parent, &compacted));
}

// The lookup is an index built at compile time: every word must still be found, and words that
// share a length, first or last byte with a table word must still be data.
KATA_TEST(every_word_and_near_misses) {
  struct Case {
    const char* word;
    unsigned long set;      // flags after the word alone
    unsigned long cleared;  // flags after "<all bits>" then the word: what it clears
    unsigned long propagation;
  };
  const unsigned long kAll = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS |
                             MS_MANDLOCK | MS_NOATIME | MS_NODIRATIME | MS_RELATIME |
                             MS_STRICTATIME | MS_I_VERSION | MS_SILENT | MS_LAZYTIME |
                             MS_NOSYMFOLLOW;
  const Case cases[] = {
      {"defaults", 0, 0, 0},
      {"ro", MS_RDONLY, 0, 0},
      {"rw", 0, MS_RDONLY, 0},
      {"suid", 0, MS_NOSUID, 0},
      {"nosuid", MS_NOSUID, 0, 0},
      {"dev", 0, MS_NODEV, 0},
      {"nodev", MS_NODEV, 0, 0},
      {"exec", 0, MS_NOEXEC, 0},
      {"noexec", MS_NOEXEC, 0, 0},
      {"sync", MS_SYNCHRONOUS, 0, 0},
      {"async", 0, MS_SYNCHRONOUS, 0},
      {"dirsync", MS_DIRSYNC, 0, 0},
      {"remount", MS_REMOUNT, 0, 0},
      {"mand", MS_MANDLOCK, 0, 0},
      {"nomand", 0, MS_MANDLOCK, 0},
      {"atime", 0, MS_NOATIME, 0},
      {"noatime", MS_NOATIME, 0, 0},
      {"diratime", 0, MS_NODIRATIME, 0},
      {"nodiratime", MS_NODIRATIME, 0, 0},
      {"relatime", MS_RELATIME, 0, 0},
      {"norelatime", 0, MS_RELATIME, 0},
      {"strictatime", MS_STRICTATIME, 0, 0},
      {"nostrictatime", 0, MS_STRICTATIME, 0},
      {"iversion", MS_I_VERSION, 0, 0},
      {"noiversion", 0, MS_I_VERSION, 0},
      {"silent", MS_SILENT, 0, 0},
      {"loud", 0, MS_SILENT, 0},
      {"bind", MS_BIND, 0, 0},
      {"rbind", MS_BIND | MS_REC, 0, 0},
      {"lazytime", MS_LAZYTIME, 0, 0},
      {"nolazytime", 0, MS_LAZYTIME, 0},
      {"nosymfollow", MS_NOSYMFOLLOW, 0, 0},
      {"symfollow", 0, MS_NOSYMFOLLOW, 0},
      {"private", 0, 0, MS_PRIVATE},
      {"rprivate", 0, 0, MS_PRIVATE | MS_REC},
      {"shared", 0, 0, MS_SHARED},
      {"rshared", 0, 0, MS_SHARED | MS_REC},
      {"slave", 0, 0, MS_SLAVE},
      {"rslave", 0, 0, MS_SLAVE | MS_REC},
      {"unbindable", 0, 0, MS_UNBINDABLE},
      {"runbindable", 0, 0, MS_UNBINDABLE | MS_REC},
  };
  // The same MountOptions throughout: a parse must not inherit anything from the one before.
  MountOptions o;
  std::string all_words;
  for (const char* w :
       {"ro", "nosuid", "nodev", "noexec", "sync", "mand", "noatime", "nodiratime", "relatime",
        "strictatime", "iversion", "silent", "lazytime", "nosymfollow"}) {
    all_words += w;
    all_words += ',';
  }
  for (const Case& c : cases) {
    CHECK(ParseMountOptions(c.word, &o, nullptr) == OptionError::kNone);
    CHECK_EQ(o.flags, c.set);
    CHECK_EQ(o.propagation, c.propagation);
    CHECK_EQ(o.data, std::string());
    CHECK(ParseMountOptions(all_words + c.word, &o, nullptr) == OptionError::kNone);
    CHECK_EQ(o.flags, (kAll | c.set) & ~c.cleared);
    CHECK_EQ(o.cleared, c.cleared);
  }
  for (const char* near : {"r", "rox", "nodevs", "Nodev", "nodeV", "roo", "o", "rw=1", "bind=",
                           "nostrictatimes", "size=65536k", "mode=755", "dax", "lop", "loops"}) {
    CHECK(ParseMountOptions(near, &o, nullptr) == OptionError::kNone);
    CHECK_EQ(o.flags, 0ul);
    CHECK_EQ(o.propagation, 0ul);
    CHECK_EQ(o.data, std::string(near));
  }
  CHECK(ParseMountOptions("rw,nosuid,nodev,relatime,size=65536k,mode=755,dax", &o, nullptr) ==
        OptionError::kNone);
  CHECK_EQ(o.flags, static_cast<unsigned long>(MS_NOSUID | MS_NODEV | MS_RELATIME));
  CHECK_EQ(o.data, std::string("size=65536k,mode=755,dax"));
}

KATA_TEST(quotes_across_words_and_elements) {
  MountOptions o;
  // A quote left open runs to the end of its element and no further.
  // A quote left open runs to the end of its element and no further, and is refused: no mount
  // API could read that word the same way.
  std::string bad;
  CHECK(ParseMountOptions(Join({"a=\"x,ro", "nodev"}), &o, &bad) == OptionError::kQuote);
  CHECK_EQ(bad, std::string("a=\"x,ro"));
  // Quotes that protect no comma are dropped, so both APIs give the filesystem the same word.
  CHECK(ParseMountOptions("\"ro\",ro,,\"\",size=\"1m\"", &o, nullptr) == OptionError::kNone);
  CHECK_EQ(o.flags, static_cast<unsigned long>(MS_RDONLY));
  CHECK_EQ(o.data, std::string("ro,size=1m"));
  // An escaped comma stays in its word, the backslash too (the filesystem unescapes).
  CHECK(ParseMountOptions("lowerdir=/a\\,b:/c\\:d,nodev", &o, nullptr) == OptionError::kNone);
  CHECK_EQ(o.data, std::string("lowerdir=/a\\,b:/c\\:d"));
  CHECK_EQ(o.flags, static_cast<unsigned long>(MS_NODEV));
  for (const char* spaced : {" ro", "ro ", "size=1m\t", "\nnodev"}) {
    CHECK(ParseMountOptions(spaced, &o, &bad) == OptionError::kSpace);
    CHECK_EQ(bad, std::string(spaced));
  }
  CHECK(ParseMountOptions(",,,", &o, nullptr) == OptionError::kNone);
  CHECK_EQ(o.data, std::string());
}

// Each refusal names its word and says why in its own words: the binding hands the reason on,
// and nothing downstream reads the word again to guess.
KATA_TEST(every_refusal_says_why) {
  struct Case {
    std::string list;
    OptionError kind;
    std::string bad;
    const char* says;
  };
  const std::string long_data(kata::MaxMountDataLength() + 1, 'x');
  const Case cases[] = {
      {Join({"ro", "loop"}), OptionError::kLoop, "loop", "loop device"},
      {"size=1m, nosuid", OptionError::kSpace, " nosuid", "whitespace"},
      {Join({"a=\"x,ro", "b"}), OptionError::kQuote, "a=\"x,ro", "unclosed double quote"},
      {Join({"upperdir=/a\\", "b"}), OptionError::kEscape, "upperdir=/a\\", "escapes nothing"},
      {long_data, OptionError::kTooLong, long_data, "does not fit"},
  };
  std::string seen;
  for (const Case& c : cases) {
    MountOptions o;
    std::string bad;
    CHECK(ParseMountOptions(c.list, &o, &bad) == c.kind);
    CHECK_EQ(bad, c.bad);
    const std::string reason = kata::OptionErrorReason(c.kind);
    CHECK(reason.find(c.says) != std::string::npos);
    CHECK(seen.find(reason) == std::string::npos);  // no two kinds share an explanation
    seen += reason + "\n";
  }
  CHECK(std::string(kata::OptionErrorReason(OptionError::kRecursiveLegacy)).find("AT_RECURSIVE") !=
        std::string::npos);
  CHECK_EQ(std::string(kata::OptionErrorReason(OptionError::kNone)), std::string());
}

KATA_TEST(recursive_words) {
  MountOptions o;
  CHECK(ParseMountOptions(Join({"rbind", "rnodev,rro", "rnosuid", "rnoexec", "ro"}), &o, nullptr) ==
        OptionError::kNone);
  // The mount itself gets them too.
  CHECK_EQ(o.flags, static_cast<unsigned long>(MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NODEV |
                                               MS_NOEXEC));
  CHECK_EQ(o.recursive_flags,
           static_cast<unsigned long>(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC));
  CHECK_EQ(o.recursive_word, std::string("rnodev"));
  CHECK_EQ(o.data, std::string());
  CHECK(kata::RecursiveNeedsNewApi(o));
  CHECK(ParseMountOptions(Join({"ro"}), &o, nullptr) == OptionError::kNone);
  CHECK_EQ(o.recursive_flags, 0ul);
  CHECK(o.recursive_word.empty());
  CHECK(!kata::RecursiveNeedsNewApi(o));
  // KEP-3857's rro comes instead of ro (CRI-O, containerd): read-only is the flag, not the word,
  // and a later rw does not undo it (runc applies the recursive attributes last).
  CHECK(ParseMountOptions(Join({"rro", "rw"}), &o, nullptr) == OptionError::kNone);
  CHECK_EQ(o.flags, static_cast<unsigned long>(MS_RDONLY));
  CHECK_EQ(o.cleared & MS_RDONLY, 0ul);
  // Only an rbind has mounts below it that mount(2) cannot reach.
  CHECK(!kata::RecursiveNeedsNewApi(o));
  CHECK(ParseMountOptions(Join({"bind", "rro"}), &o, nullptr) == OptionError::kNone);
  CHECK(!kata::RecursiveNeedsNewApi(o));
  CHECK(ParseMountOptions(Join({"rbind", "rprivate", "rro"}), &o, nullptr) == OptionError::kNone);
  CHECK(kata::RecursiveNeedsNewApi(o));
}
