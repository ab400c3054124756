#include "bindflags.h"

#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>

namespace kata {

static_assert(kPerMountFlags ==
                  (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW | MS_NODIRATIME),
              "kPerMountFlags spells the MS_* per-mount bits");
static_assert(kAtimeModeFlags == (MS_NOATIME | MS_RELATIME | MS_STRICTATIME),
              "kAtimeModeFlags spells the atime modes");

namespace {

// statfs f_flags bits (include/linux/statfs.h); glibc's ST_* have the same values where defined.
constexpr unsigned long kStRdonly = 0x0001, kStNosuid = 0x0002, kStNodev = 0x0004,
                        kStNoexec = 0x0008, kStNoatime = 0x0400, kStNodiratime = 0x0800,
                        kStRelatime = 0x1000, kStNosymfollow = 0x2000;

constexpr struct {
  unsigned long ms;
  const char* word;
} kNames[] = {
    {MS_RDONLY, "ro"},       {MS_NOSUID, "nosuid"},           {MS_NODEV, "nodev"},
    {MS_NOEXEC, "noexec"},   {MS_NOSYMFOLLOW, "nosymfollow"}, {MS_NODIRATIME, "nodiratime"},
    {MS_NOATIME, "noatime"}, {MS_RELATIME, "relatime"},       {MS_STRICTATIME, "strictatime"},
};

unsigned long AtimeMode(unsigned long ms) {
  if (ms & MS_STRICTATIME) return MS_STRICTATIME;
  if (ms & MS_NOATIME) return MS_NOATIME;
  return MS_RELATIME;
}

}  // namespace

bool SourceMountFlags(const char* path, int fd, unsigned long* ms) {
  struct statfs st;
  if ((fd >= 0 ? fstatfs(fd, &st) : statfs(path, &st)) != 0) return false;
  const unsigned long f = static_cast<unsigned long>(st.f_flags);
  unsigned long out = 0;
  if (f & kStRdonly) out |= MS_RDONLY;
  if (f & kStNosuid) out |= MS_NOSUID;
  if (f & kStNodev) out |= MS_NODEV;
  if (f & kStNoexec) out |= MS_NOEXEC;
  if (f & kStNosymfollow) out |= MS_NOSYMFOLLOW;
  if (f & kStNodiratime) out |= MS_NODIRATIME;
  // Neither noatime nor relatime reported means strictatime.
  out |= (f & kStNoatime) ? MS_NOATIME : (f & kStRelatime) ? MS_RELATIME : MS_STRICTATIME;
  *ms = out;
  return true;
}

bool ChangesPerMountFlags(const MountOptions& opts) {
  return ((opts.flags | opts.cleared) & (kPerMountFlags | kAtimeModeFlags)) != 0;
}

unsigned long BindMountFlags(unsigned long source, const MountOptions& opts) {
  unsigned long out = ((source & ~opts.cleared) | opts.flags) & kPerMountFlags;
  unsigned long mode;
  if (opts.flags & kAtimeModeFlags) {
    mode = AtimeMode(opts.flags);
  } else {
    mode = AtimeMode(source) & ~opts.cleared & kAtimeModeFlags;
    if (mode == 0) mode = MS_RELATIME;
  }
  return out | mode;
}

std::string ClearedFlagWords(unsigned long source, unsigned long wanted) {
  std::string out;
  unsigned long gone = source & ~wanted & kPerMountFlags;
  if (AtimeMode(source) != AtimeMode(wanted)) gone |= AtimeMode(source);
  for (const auto& n : kNames) {
    if (!(gone & n.ms)) continue;
    if (!out.empty()) out += ", ";
    out += n.word;
  }
  return out;
}

std::string LockedFlagsDetail(unsigned long source, unsigned long wanted) {
  const std::string words = ClearedFlagWords(source, wanted);
  if (words.empty()) return words;
  return "the kernel refuses to clear " + words +
         " on this bind: the source's flags are locked (it came from a more privileged mount "
         "namespace); keep them or bind another source";
}

}  // namespace kata
