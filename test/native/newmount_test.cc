// The fallbacks under a seccomp profile that refuses a call: mount(2) for the new API, a walk
// component by component for openat2 (as on kernels before 5.6). The probe is cached
// for the life of a process (and other cases here have already run it), so each case forks, makes
// the child's mount namespace private, installs the filter (it survives exec, as a runtime's
// would) and re-executes this program, filtered to that one case, with KATA_TEST_REFUSED set: the
// fresh process probes under the filter and reports through its exit status.
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "check.h"
#include "mount.h"
#include "newmount.h"
#include "release.h"

#ifndef SYS_openat2
#define SYS_openat2 437  // the unified syscall table (Linux 5.6)
#endif

namespace {

constexpr int kSkip = 77;
constexpr const char* kChildEnv = "KATA_TEST_REFUSED";

// Makes `nr` fail with `err` in this process and what it executes; false where seccomp is
// unavailable (qemu-user, some containers).
bool Refuse(long nr, int err) {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, 1),
      BPF_STMT(BPF_RET | BPF_K,
               SECCOMP_RET_ERRNO | (static_cast<unsigned>(err) & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

bool IsMountRoot(const char* path) {
  bool root = false;
  kata::SysError e;
  return kata::IsMountPoint(path, &root, &e) && root;
}

// In the re-executed child, under the filter: auto mounts through mount(2), a forced new API
// reports the refused call, recursive attributes are refused. Exits with the number of failures.
[[noreturn]] void RunRefused(int err, const char* refused_syscall) {
  char dir[] = "/tmp/kata-newmount-XXXXXX";
  if (!mkdtemp(dir)) _exit(kSkip);
  int failed = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "  refused %s (%s): %s\n", refused_syscall, std::strerror(err), what);
      ++failed;
    }
  };
  expect(!kata::ProbeNewMountApi().Complete(), "probe saw the refusal");
  kata::MountOptions opts;
  opts.data = "size=64k";
  expect(kata::EffectiveMountApi(kata::MountApi::kAuto, opts) == kata::MountApi::kLegacy,
         "auto resolves to mount(2)");

  kata::SysError e;
  expect(kata::Mount("tmpfs", dir, "tmpfs", opts, &e), "auto mounts");
  expect(IsMountRoot(dir), "auto's mount is there");
  umount2(dir, 0);

  kata::SysError forced;
  kata::MountRequest req;
  req.api = kata::MountApi::kNew;
  // A plain tmpfs needs no mount_setattr; nosymfollow does.
  if (std::strcmp(refused_syscall, "mount_setattr") == 0) opts.flags |= MS_NOSYMFOLLOW;
  expect(!kata::Mount("tmpfs", dir, "tmpfs", opts, &forced, req), "forced new fails");
  expect(forced.err == err, "with the refusal's errno");
  expect(std::strcmp(forced.syscall, refused_syscall) == 0, "naming the refused call");
  expect(!IsMountRoot(dir), "and leaves nothing mounted");

  // A new superblock has no mounts below it: rro is read-only, which mount(2) can do.
  kata::MountOptions rro;
  expect(kata::ParseMountOptions("rro", &rro, nullptr) == kata::OptionError::kNone, "rro parses");
  kata::SysError fresh;
  expect(kata::Mount("tmpfs", dir, "tmpfs", rro, &fresh), "mount(2) takes rro on a new tmpfs");
  struct statvfs vfs {};
  expect(statvfs(dir, &vfs) == 0 && (vfs.f_flag & ST_RDONLY), "read-only");
  umount2(dir, 0);
  // An rbind brings mounts below that mount(2) cannot make read-only.
  kata::MountOptions rbind_rro;
  expect(kata::ParseMountOptions(std::string("rbind\0rro", 9), &rbind_rro, nullptr) ==
             kata::OptionError::kNone,
         "rbind,rro parses");
  kata::SysError refused;
  expect(!kata::Mount(dir, dir, nullptr, rbind_rro, &refused), "mount(2) refuses rbind with rro");
  expect(refused.err == EINVAL && !IsMountRoot(dir), "with EINVAL, mounting nothing");
  rmdir(dir);
  _exit(failed);
}

// In the re-executed child, openat2 refused with ENOSYS as on a kernel before 5.6: `beneath`
// still mounts, records the mount's ID, crosses a mount on the way, and refuses a symlink, a
// ".." and a file on the way with openat2's own errors, mounting nothing.
[[noreturn]] void RunBeneathWithoutOpenat2(int, const char*) {
  char dir[] = "/tmp/kata-beneath-XXXXXX";
  if (!mkdtemp(dir)) _exit(kSkip);
  const std::string root = dir;
  int failed = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "  beneath without openat2: %s\n", what);
      ++failed;
    }
  };
  expect(!kata::ProbeNewMountApi().openat2, "probe saw openat2 refused");
  mkdir((root + "/a").c_str(), 0755);
  mkdir((root + "/a/b").c_str(), 0755);
  mkdir((root + "/outside").c_str(), 0755);
  expect(symlink((root + "/outside").c_str(), (root + "/a/link").c_str()) == 0, "symlink made");
  const int file = open((root + "/a/file").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (file >= 0) close(file);
  kata::MountOptions opts;
  opts.data = "size=64k";
  for (const kata::MountApi api : {kata::MountApi::kAuto, kata::MountApi::kLegacy}) {
    uint64_t id = 0;
    kata::MountRequest req;
    req.api = api;
    req.beneath = dir;
    req.mount_id = &id;
    kata::SysError e;
    const std::string b = root + "/a/b";
    expect(kata::Mount("tmpfs", b.c_str(), "tmpfs", opts, &e, req), "mounts beneath the root");
    uint64_t seen = 0;
    expect(kata::MountIdAt(b, &seen, &e) && id != 0 && id == seen, "records the mount's ID");
    // A mount on the way is crossed, as the kernel's own walk crosses it.
    const std::string c = b + "/c";
    mkdir(c.c_str(), 0755);
    kata::MountRequest inner = req;
    inner.mount_id = nullptr;
    expect(kata::Mount("tmpfs", c.c_str(), "tmpfs", opts, &e, inner), "mounts inside that mount");
    expect(IsMountRoot(c.c_str()), "on the directory of the mount below");
    umount2(c.c_str(), 0);
    umount2(b.c_str(), 0);
    expect(!IsMountRoot(b.c_str()), "both unmounted");

    const struct {
      std::string target;
      int err;
    } refused[] = {{root + "/a/link", ELOOP},
                   {root + "/a/link/x", ELOOP},
                   {root + "/a/../../etc", EXDEV},
                   {root + "/a/file/x", ENOTDIR}};
    for (const auto& r : refused) {
      kata::SysError why;
      expect(!kata::Mount("tmpfs", r.target.c_str(), "tmpfs", opts, &why, req), "refused");
      expect(why.err == r.err && std::strcmp(why.syscall, "openat2") == 0, "with openat2's errno");
    }
    expect(!IsMountRoot((root + "/outside").c_str()), "nothing mounted outside");
  }
  unlink((root + "/a/link").c_str());
  unlink((root + "/a/file").c_str());
  rmdir((root + "/a/b/c").c_str());
  rmdir((root + "/a/b").c_str());
  rmdir((root + "/a").c_str());
  rmdir((root + "/outside").c_str());
  rmdir(dir);
  _exit(failed);
}

using ChildCase = void (*)(int err, const char* name);

void UnderRefusal(const char* case_name, long nr, int err, const char* name,
                  ChildCase run = RunRefused) {
  if (const char* child = getenv(kChildEnv)) {
    if (std::strcmp(child, case_name) == 0) run(err, name);
  }
  if (geteuid() != 0) KATA_SKIP("needs root");
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) KATA_SKIP("cannot find this program to re-execute it");
  self[n] = '\0';
  const pid_t pid = fork();
  if (pid == 0) {
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 || !Refuse(nr, err) ||
        setenv(kChildEnv, case_name, 1) != 0) {
      _exit(kSkip);
    }
    char* argv[] = {self, const_cast<char*>(case_name), nullptr};
    execv(self, argv);
    _exit(kSkip);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status));
  if (WIFEXITED(status) && WEXITSTATUS(status) == kSkip)
    KATA_SKIP("seccomp or re-exec unavailable");
  CHECK_EQ(WEXITSTATUS(status), 0);
}

}  // namespace

KATA_TEST(new_api_refused_enosys_falls_back) {
  UnderRefusal("new_api_refused_enosys_falls_back", SYS_fsopen, ENOSYS, "fsopen");
}

KATA_TEST(new_api_refused_eperm_falls_back) {
  UnderRefusal("new_api_refused_eperm_falls_back", SYS_mount_setattr, EPERM, "mount_setattr");
}

KATA_TEST(beneath_without_openat2_walks_components) {
  UnderRefusal("beneath_without_openat2_walks_components", SYS_openat2, ENOSYS, "openat2",
               RunBeneathWithoutOpenat2);
}

KATA_TEST(fsconfig_string_limit) {
  auto fits = [](const std::string& data) {
    kata::MountOptions o;
    o.data = data;
    return kata::FitsFsconfig(o);
  };
  CHECK(fits(""));
  CHECK(fits("size=1m," + std::string(255, 'k')));
  CHECK(!fits("size=1m," + std::string(256, 'k')));
  CHECK(fits(std::string(255, 'k') + "=" + std::string(255, 'v') + ",x"));
  CHECK(!fits(std::string(255, 'k') + "=" + std::string(256, 'v')));
  CHECK(!fits(std::string(256, 'k') + "=v"));
  // A quoted comma does not end the word, so the whole value counts.
  CHECK(!fits("context=\"" + std::string(200, 'a') + "," + std::string(200, 'b') + "\""));
  CHECK(fits("a=" + std::string(200, 'a') + ",b=" + std::string(200, 'b')));
  // An overlay's layers go one by one where the kernel takes "lowerdir+": each must fit.
  const std::string layer = "/" + std::string(200, 'l');
  CHECK_EQ(fits("lowerdir=" + layer + ":" + layer), kata::OverlayTakesLayersOneByOne());
  CHECK(!fits("lowerdir=" + layer + ":/" + std::string(255, 'l')));
  CHECK(!fits("upperdir=" + layer + layer));
}
