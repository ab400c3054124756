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
  CHECK_EQ(All(Join({"rbind", "", "ro"}), &d), static_cast<unsigned long>(MS_BIND | MS_REC | MS_RDONLY));
  CHECK_EQ(All(Join({"dev", "ro", "defaults", "data-option"}), &d), static_cast<unsigned long>(MS_RDONLY));
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
  CHECK(ParseMountOptions(std::string(kata::MaxMountDataLength() + 1, 'x'), &o, &bad) == OptionError::kTooLong);
  CHECK(ParseMountOptions(std::string(kata::MaxMountDataLength(), 'x'), &o, &bad) == OptionError::kNone);
}

KATA_TEST(recursive_words) {
  MountOptions o;
  CHECK(ParseMountOptions(Join({"rbind", "rnodev,rro", "rnosuid", "rnoexec", "ro"}), &o, nullptr) ==
        OptionError::kNone);
  CHECK_EQ(o.flags, static_cast<unsigned long>(MS_BIND | MS_REC | MS_RDONLY));
  CHECK_EQ(o.recursive_flags, static_cast<unsigned long>(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC));
  CHECK_EQ(o.recursive_word, std::string("rnodev"));
  CHECK_EQ(o.data, std::string());
  CHECK(ParseMountOptions(Join({"ro"}), &o, nullptr) == OptionError::kNone);
  CHECK_EQ(o.recursive_flags, 0ul);
  CHECK(o.recursive_word.empty());
}
