#include <sys/mount.h>

#include <string>

#include "bindflags.h"
#include "check.h"
#include "options.h"

namespace {

unsigned long Bind(unsigned long source, const char* words) {
  kata::MountOptions o;
  CHECK(kata::ParseMountOptions(words, &o, nullptr) == kata::OptionError::kNone);
  return kata::BindMountFlags(source, o);
}

}  // namespace

// The source's flags changed by the words, in order; exactly one atime mode always named.
KATA_TEST(bind_flags_start_from_the_source) {
  const unsigned long hard = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  CHECK_EQ(Bind(hard | MS_RELATIME, "bind,ro"), hard | MS_RDONLY | MS_RELATIME);
  CHECK_EQ(Bind(hard | MS_RELATIME, "bind,suid,dev"),
           static_cast<unsigned long>(MS_NOEXEC | MS_RELATIME));
  CHECK_EQ(Bind(MS_RDONLY | MS_RELATIME, "bind,rw,ro"),
           static_cast<unsigned long>(MS_RDONLY | MS_RELATIME));
  CHECK_EQ(Bind(MS_RDONLY | MS_RELATIME, "bind,ro,rw"), static_cast<unsigned long>(MS_RELATIME));
  // Superblock words are not per-mount flags.
  CHECK_EQ(Bind(MS_RELATIME, "bind,sync,mand,ro"),
           static_cast<unsigned long>(MS_RDONLY | MS_RELATIME));
}

KATA_TEST(bind_flags_atime_is_one_field) {
  CHECK_EQ(Bind(MS_NOATIME, "bind,ro"), static_cast<unsigned long>(MS_RDONLY | MS_NOATIME));
  CHECK_EQ(Bind(MS_NOATIME, "bind,atime"), static_cast<unsigned long>(MS_RELATIME));
  CHECK_EQ(Bind(MS_NOATIME, "bind,relatime"), static_cast<unsigned long>(MS_RELATIME));
  CHECK_EQ(Bind(MS_STRICTATIME, "bind,nostrictatime"), static_cast<unsigned long>(MS_RELATIME));
  CHECK_EQ(Bind(MS_STRICTATIME, "bind,atime"), static_cast<unsigned long>(MS_STRICTATIME));
  CHECK_EQ(Bind(MS_RELATIME, "bind,noatime,strictatime"),
           static_cast<unsigned long>(MS_STRICTATIME));
  CHECK_EQ(Bind(MS_RELATIME, "bind,strictatime,noatime"),
           static_cast<unsigned long>(MS_STRICTATIME));
  CHECK_EQ(Bind(MS_NODIRATIME | MS_RELATIME, "bind,diratime"),
           static_cast<unsigned long>(MS_RELATIME));
}

KATA_TEST(bind_flags_name_what_a_refusal_cleared) {
  const unsigned long source = MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NOATIME;
  CHECK_EQ(kata::ClearedFlagWords(source, Bind(source, "bind,rw,exec")), std::string("ro, noexec"));
  CHECK_EQ(kata::ClearedFlagWords(source, Bind(source, "bind,relatime")), std::string("noatime"));
  CHECK_EQ(kata::ClearedFlagWords(source, Bind(source, "bind,nodev")), std::string());
  CHECK(kata::LockedFlagsDetail(source, Bind(source, "bind,nodev")).empty());
  CHECK(kata::LockedFlagsDetail(source, Bind(source, "bind,suid")).find("clear nosuid") !=
        std::string::npos);
}
