#include "newmount.h"
#include "fd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "beneath.h"
#include "bindflags.h"
#include "release.h"

// glibc 2.36's <sys/mount.h> and <linux/mount.h> cannot both be included, and the glibc wrappers
// (fsopen, ...) would raise the addon's symbol floor above 2.28: the kernel ABI is spelled out
// here and reached through syscall(2). The numbers are the same on every architecture.
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_fspick
#define SYS_fspick 433
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

namespace kata {
namespace {

constexpr unsigned kOpenTreeClone = 1;
constexpr unsigned kMoveMountFEmptyPath = 0x04;
constexpr unsigned kMoveMountTSymlinks = 0x10;
constexpr unsigned kMoveMountTEmptyPath = 0x40;
constexpr unsigned kFsopenCloexec = 0x01;
constexpr unsigned kFsmountCloexec = 0x01;
constexpr unsigned kFsconfigSetFlag = 0;
constexpr unsigned kFsconfigSetString = 1;
constexpr unsigned kFsconfigCmdCreate = 6;
constexpr unsigned kFsconfigCmdReconfigure = 7;
constexpr unsigned kFspickCloexec = 0x01;
constexpr unsigned kFspickSymlinkNofollow = 0x02;
constexpr unsigned kFspickNoAutomount = 0x04;

// fsconfig copies keys and string values with strndup_user(..., 256).
constexpr size_t kFsconfigMaxString = 255;

constexpr std::string_view kLowerdirKey = "lowerdir=";

constexpr uint64_t kAttrRdonly = 0x01;
constexpr uint64_t kAttrNosuid = 0x02;
constexpr uint64_t kAttrNodev = 0x04;
constexpr uint64_t kAttrNoexec = 0x08;
constexpr uint64_t kAttrNoatime = 0x10;
constexpr uint64_t kAttrStrictatime = 0x20;
constexpr uint64_t kAttrAtimeField = 0x70;
constexpr uint64_t kAttrNodiratime = 0x80;
constexpr uint64_t kAttrNosymfollow = 0x00200000;
// What fsmount() accepts in its attr_flags; nosymfollow has to go through mount_setattr.
constexpr uint64_t kFsmountAttrs = kAttrRdonly | kAttrNosuid | kAttrNodev | kAttrNoexec |
                                   kAttrNoatime | kAttrStrictatime | kAttrNodiratime;

struct MountAttr {
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};

constexpr unsigned long kPropagationMask = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE;

int SysOpenTree(int dirfd, const char* path, unsigned flags) {
  return static_cast<int>(syscall(SYS_open_tree, dirfd, path, flags));
}
int SysMoveMount(int from_dirfd, const char* from, int to_dirfd, const char* to, unsigned flags) {
  return static_cast<int>(syscall(SYS_move_mount, from_dirfd, from, to_dirfd, to, flags));
}
int SysFsopen(const char* fstype, unsigned flags) {
  return static_cast<int>(syscall(SYS_fsopen, fstype, flags));
}
int SysFsconfig(int fd, unsigned cmd, const char* key, const char* value, int aux) {
  return static_cast<int>(syscall(SYS_fsconfig, fd, cmd, key, value, aux));
}
int SysFspick(int dirfd, const char* path, unsigned flags) {
  return static_cast<int>(syscall(SYS_fspick, dirfd, path, flags));
}
int SysFsmount(int fd, unsigned flags, uint64_t attrs) {
  return static_cast<int>(syscall(SYS_fsmount, fd, flags, static_cast<unsigned>(attrs)));
}
int SysMountSetattr(int dirfd, const char* path, unsigned flags, MountAttr* attr) {
  return static_cast<int>(syscall(SYS_mount_setattr, dirfd, path, flags, attr, sizeof(*attr)));
}
int SysOpenat2(int dirfd, const char* path, open_how* how) {
  return static_cast<int>(syscall(SYS_openat2, dirfd, path, how, sizeof(*how)));
}

// A call made with arguments every kernel refuses (bad fd, NULL path, size 0) says EBADF/EINVAL/
// EFAULT when it exists; ENOSYS or EPERM (seccomp, or not privileged) means we may not use it.
bool Usable(long rc) { return !(rc < 0 && (errno == ENOSYS || errno == EPERM)); }

uint64_t AttrsOf(unsigned long ms) {
  uint64_t a = 0;
  if (ms & MS_RDONLY) a |= kAttrRdonly;
  if (ms & MS_NOSUID) a |= kAttrNosuid;
  if (ms & MS_NODEV) a |= kAttrNodev;
  if (ms & MS_NOEXEC) a |= kAttrNoexec;
  if (ms & MS_NOSYMFOLLOW) a |= kAttrNosymfollow;
  if (ms & MS_NODIRATIME) a |= kAttrNodiratime;
  // mount(2)'s precedence: strictatime beats noatime, and relatime (0) is the default.
  if (ms & MS_STRICTATIME) {
    a |= kAttrStrictatime;
  } else if (ms & MS_NOATIME) {
    a |= kAttrNoatime;
  }
  return a;
}

// The context's log holds what the filesystem said while parsing or creating ("e tmpfs: Bad
// value for 'size'"); each read() returns one message until ENODATA.
void ReadKernelMessages(int fs_fd, std::vector<std::string>* out) {
  char buf[1024];
  for (int i = 0; i < 16; ++i) {
    const ssize_t n = read(fs_fd, buf, sizeof(buf));
    if (n <= 0) break;
    std::string m(buf, static_cast<size_t>(n));
    while (!m.empty() && m.back() == '\n') m.pop_back();
    if (m.size() > 2 && m[1] == ' ') {
      const char level = m[0];
      m.erase(0, 2);
      if (level == 'w') m.insert(0, "warning: ");
      if (level == 'i') m.insert(0, "info: ");
    }
    out->push_back(std::move(m));
  }
}

// Superblock flags that mount(2) takes in `flags` become fsconfig flags. MS_SILENT and
// MS_I_VERSION have no fs-context word (the kernel decides i_version per filesystem now).
constexpr struct {
  unsigned long ms;
  const char* word;
} kSuperblockFlags[] = {
    {MS_RDONLY, "ro"},     {MS_SYNCHRONOUS, "sync"},  {MS_DIRSYNC, "dirsync"},
    {MS_MANDLOCK, "mand"}, {MS_LAZYTIME, "lazytime"},
};

// One data word as fsconfig takes it: "key=value" is a string parameter, a bare word a flag.
// Double quotes only protect commas from the option splitter (context="a,b"); the filesystem
// must not see them, as with mount(8).
bool ConfigureWord(int fs_fd, std::string word, SysError* error, const char* source,
                   const char* target) {
  std::string value;
  const size_t eq = word.find('=');
  const bool has_value = eq != std::string::npos;
  if (has_value) {
    for (size_t i = eq + 1; i < word.size(); ++i) {
      if (word[i] != '"') value.push_back(word[i]);
    }
    word.resize(eq);
  }
  const int rc = has_value ? SysFsconfig(fs_fd, kFsconfigSetString, word.c_str(), value.c_str(), 0)
                           : SysFsconfig(fs_fd, kFsconfigSetFlag, word.c_str(), nullptr, 0);
  if (rc != 0) {
    error->Set(errno, "fsconfig", source, target);
    return false;
  }
  return true;
}

// overlayfs takes its lower layers one per fsconfig call as "lowerdir+" (and the data-only ones,
// after "::", as "datadir+") from Linux 6.8: the way past fsconfig's 255-byte value for a stack
// of layers. Each entry keeps its escapes; overlayfs unescapes a "lowerdir+" path as it does
// one of lowerdir=.
bool ConfigureLowerdirs(int fs_fd, std::string_view value, SysError* error, const char* source,
                        const char* target) {
  std::vector<std::string_view> entries;
  SplitLowerdir(value, &entries);
  const char* key = "lowerdir+";
  for (std::string_view e : entries) {
    if (e.empty()) {
      key = "datadir+";
      continue;
    }
    std::string layer;  // as ConfigureWord: quotes only protected commas from the splitter
    for (char c : e) {
      if (c != '"') layer.push_back(c);
    }
    if (SysFsconfig(fs_fd, kFsconfigSetString, key, layer.c_str(), 0) != 0) {
      error->Set(errno, "fsconfig", source, target);
      return false;
    }
  }
  return true;
}

// Every data word of `data` through fsconfig. The parser joined data words with commas; the same
// tokenizer (NextOptionWord) finds them again, so a quoted or escaped comma stays inside its
// word exactly as mount(2)'s filesystem would see it. On failure the context's kernel messages
// are in `error`.
bool ConfigureData(int fs_fd, const std::string& data, SysError* error, const char* source,
                   const char* target) {
  std::string_view word;
  for (size_t pos = 0; NextOptionWord(data, &pos, &word);) {
    const bool layers = word.size() > kLowerdirKey.size() + kFsconfigMaxString &&
                        word.substr(0, kLowerdirKey.size()) == kLowerdirKey;
    if (layers &&
        !ConfigureLowerdirs(fs_fd, word.substr(kLowerdirKey.size()), error, source, target)) {
      ReadKernelMessages(fs_fd, &error->kernel_messages);
      return false;
    }
    if (!layers && !word.empty() &&
        !ConfigureWord(fs_fd, std::string(word), error, source, target)) {
      ReadKernelMessages(fs_fd, &error->kernel_messages);
      return false;
    }
  }
  return true;
}

// fsopen + fsconfig + fsmount: a detached mount of a new superblock, or -1.
int CreateFilesystemMount(const char* source, const char* target, const char* fstype,
                          const MountOptions& opts, uint64_t attrs, SysError* error) {
  Fd fs(SysFsopen(fstype ? fstype : "", kFsopenCloexec));
  if (fs.get() < 0) {
    error->Set(errno, "fsopen", source, target);
    return -1;
  }
  auto fail = [&](const char* syscall) {
    error->Set(errno, syscall, source, target);
    ReadKernelMessages(fs.get(), &error->kernel_messages);
    return -1;
  };
  if (source && *source && SysFsconfig(fs.get(), kFsconfigSetString, "source", source, 0) != 0) {
    return fail("fsconfig");
  }
  for (const auto& f : kSuperblockFlags) {
    if ((opts.flags & f.ms) && SysFsconfig(fs.get(), kFsconfigSetFlag, f.word, nullptr, 0) != 0) {
      return fail("fsconfig");
    }
  }
  if (!ConfigureData(fs.get(), opts.data, error, source, target)) return -1;
  if (SysFsconfig(fs.get(), kFsconfigCmdCreate, nullptr, nullptr, 0) != 0) return fail("fsconfig");
  const int mnt = SysFsmount(fs.get(), kFsmountCloexec, attrs & kFsmountAttrs);
  if (mnt < 0) return fail("fsmount");
  return mnt;
}

}  // namespace

const NewMountSupport& ProbeNewMountApi() {
  static const NewMountSupport support = [] {
    const int saved = errno;
    NewMountSupport s;
    s.fsopen = Usable(syscall(SYS_fsopen, nullptr, 0));
    s.fsconfig = Usable(syscall(SYS_fsconfig, -1, kFsconfigCmdCreate, nullptr, nullptr, 0));
    s.fsmount = Usable(syscall(SYS_fsmount, -1, 0, 0));
    s.move_mount = Usable(syscall(SYS_move_mount, -1, nullptr, -1, nullptr, ~0u));
    s.open_tree = Usable(syscall(SYS_open_tree, -1, nullptr, ~0u));
    s.mount_setattr = Usable(syscall(SYS_mount_setattr, -1, nullptr, 0, nullptr, 0));
    s.openat2 = Usable(syscall(SYS_openat2, -1, nullptr, nullptr, 0));
    s.fspick = Usable(syscall(SYS_fspick, -1, nullptr, ~0u));
    errno = saved;
    return s;
  }();
  return support;
}

bool OverlayTakesLayersOneByOne() {
  static const bool takes = [] {
    const int saved = errno;
    // A context that is never created: the parse of one layer is all that happens.
    Fd fs(SysFsopen("overlay", kFsopenCloexec));
    const bool ok =
        fs.get() >= 0 && SysFsconfig(fs.get(), kFsconfigSetString, "lowerdir+", "/", 0) == 0;
    errno = saved;
    return ok;
  }();
  return takes;
}

bool FitsFsconfig(const MountOptions& opts) {
  if (opts.data.size() <= kFsconfigMaxString) return true;
  // Per word, conservatively counting quotes (they only shorten a value).
  std::string_view word;
  std::vector<std::string_view> entries;
  for (size_t pos = 0; NextOptionWord(opts.data, &pos, &word);) {
    const size_t eq = word.find('=');
    const size_t key = eq == std::string_view::npos ? word.size() : eq;
    const size_t value = eq == std::string_view::npos ? 0 : word.size() - eq - 1;
    if (key > kFsconfigMaxString) return false;
    if (value <= kFsconfigMaxString) continue;
    if (word.substr(0, kLowerdirKey.size()) != kLowerdirKey || !OverlayTakesLayersOneByOne())
      return false;
    SplitLowerdir(word.substr(kLowerdirKey.size()), &entries);
    for (std::string_view e : entries) {
      if (e.size() > kFsconfigMaxString) return false;
    }
  }
  return true;
}

int OpenBeneath(const char* root, const char* relative, const char* report_path, SysError* error) {
  Fd dir(open(root, O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) {
    error->Set(errno, "open", root);
    return -1;
  }
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC | O_NOFOLLOW;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
  int fd;
  do {
    fd = SysOpenat2(dir.get(), relative, &how);
  } while (fd < 0 && errno == EAGAIN);  // only with RESOLVE_CACHED or a racing rename; retry
  if (fd < 0 && errno == ENOSYS) fd = OpenBeneathWalk(dir.get(), relative);
  if (fd < 0) error->Set(errno, "openat2", report_path);
  return fd;
}

bool NewMount(const char* source, const char* target, int target_fd, const char* fstype,
              const MountOptions& opts, SysError* error, uint64_t* mount_id) {
  const unsigned long flags = opts.flags & ~kPropagationMask;
  const bool is_bind = flags & MS_BIND;
  const uint64_t attrs = AttrsOf(flags);
  const uint64_t recursive = AttrsOf(opts.recursive_flags);

  Fd mnt;
  uint64_t pending = 0;  // attributes still to set on a detached new superblock's mount
  if (is_bind) {
    const unsigned tree_flags = kOpenTreeClone | O_CLOEXEC | ((flags & MS_REC) ? AT_RECURSIVE : 0);
    mnt.reset(SysOpenTree(AT_FDCWD, source, tree_flags));
    if (mnt.get() < 0) {
      error->Set(errno, "open_tree", source, target);
      return false;
    }
    if (recursive) {
      MountAttr a{recursive, 0, 0, 0};
      if (SysMountSetattr(mnt.get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &a) != 0) {
        error->Set(errno, "mount_setattr", source, target);
        return false;
      }
    }
    // The clone carries its source's flags; the words change them exactly as mount(2)'s bind
    // remount does (bindflags.h): every per-mount attribute and the atime mode are named, so
    // the result does not depend on which API made it.
    if (ChangesPerMountFlags(opts)) {
      unsigned long source_flags = 0;
      if (!SourceMountFlags(nullptr, mnt.get(), &source_flags)) {
        error->Set(errno, "statfs", source, target);
        return false;
      }
      const unsigned long wanted = BindMountFlags(source_flags, opts);
      MountAttr a{AttrsOf(wanted), AttrsOf(kPerMountFlags) | kAttrAtimeField, 0, 0};
      if (SysMountSetattr(mnt.get(), "", AT_EMPTY_PATH, &a) != 0) {
        error->Set(errno, "mount_setattr", source, target);
        if (errno == EPERM) error->detail = LockedFlagsDetail(source_flags, wanted);
        return false;
      }
    }
  } else {
    // A fresh superblock has no sub-mounts: recursive attributes are plain ones here.
    mnt.reset(CreateFilesystemMount(source, target, fstype, opts, attrs | recursive, error));
    if (mnt.get() < 0) return false;
    pending = (attrs | recursive) & ~kFsmountAttrs;
  }

  if (pending) {
    MountAttr a{pending, 0, 0, 0};
    // The atime mode is one field: setting it requires naming the whole field in attr_clr.
    if (pending & kAttrAtimeField) a.attr_clr = kAttrAtimeField;
    if (SysMountSetattr(mnt.get(), "", AT_EMPTY_PATH, &a) != 0) {
      error->Set(errno, "mount_setattr", source, target);
      return false;
    }
  }

  const int rc = target_fd >= 0 ? SysMoveMount(mnt.get(), "", target_fd, "",
                                               kMoveMountFEmptyPath | kMoveMountTEmptyPath)
                                : SysMoveMount(mnt.get(), "", AT_FDCWD, target,
                                               kMoveMountFEmptyPath | kMoveMountTSymlinks);
  if (rc != 0) {
    // Closing the fd dissolves the detached mount: nothing was ever visible.
    error->Set(errno, "move_mount", source, target);
    return false;
  }

  if (opts.propagation != 0) {
    MountAttr a{0, 0, opts.propagation & ~static_cast<unsigned long>(MS_REC), 0};
    const unsigned at = AT_EMPTY_PATH | ((opts.propagation & MS_REC) ? AT_RECURSIVE : 0);
    if (SysMountSetattr(mnt.get(), "", at, &a) != 0) {
      error->Set(errno, "mount_setattr", source, target);
      // The fd names the attached mount itself; its /proc link reaches it whatever happened to
      // the target path since.
      const std::string self = "/proc/self/fd/" + std::to_string(mnt.get());
      umount2(self.c_str(), MNT_DETACH);
      return false;
    }
  }
  // The fd is the mount: its identity, whatever the target path names by now.
  if (mount_id != nullptr && !MountIdOfFd(mnt.get(), mount_id)) *mount_id = 0;
  return true;
}

bool ReconfigureSuperblock(const char* target, const MountOptions& opts, SysError* error) {
  // NOFOLLOW and NO_AUTOMOUNT: the superblock changed is the one mounted exactly at `target`.
  Fd fs(SysFspick(AT_FDCWD, target, kFspickCloexec | kFspickSymlinkNofollow | kFspickNoAutomount));
  if (fs.get() < 0) {
    error->Set(errno, "fspick", target);
    return false;
  }
  for (const auto& f : kSuperblockFlags) {
    if ((opts.flags & f.ms) && SysFsconfig(fs.get(), kFsconfigSetFlag, f.word, nullptr, 0) != 0) {
      error->Set(errno, "fsconfig", target);
      ReadKernelMessages(fs.get(), &error->kernel_messages);
      return false;
    }
  }
  if (!ConfigureData(fs.get(), opts.data, error, target, "")) return false;
  if (SysFsconfig(fs.get(), kFsconfigCmdReconfigure, nullptr, nullptr, 0) != 0) {
    error->Set(errno, "fsconfig", target);
    ReadKernelMessages(fs.get(), &error->kernel_messages);
    return false;
  }
  return true;
}

}  // namespace kata
