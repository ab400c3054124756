// The fallback to mount(2) under a seccomp profile that refuses the new API. Each case runs in a
// forked child: the filter cannot be removed once installed, the probe result is cached for the
// life of a process, and the child's private mount namespace keeps its mounts away from ours.
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "check.h"
#include "mount.h"
#include "newmount.h"

namespace {

constexpr int kSkip = 77;

// Makes `nr` fail with `err` in this process from now on; false where seccomp is unavailable
// (qemu-user, some containers).
bool Refuse(long nr, int err) {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<unsigned>(err) & SECCOMP_RET_DATA)),
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

// In the child: refuse `nr` with `err`, then check that auto mounts through mount(2), that a forced
// new API reports the refused call, and that recursive attributes are refused. Exit status is the
// number of failed checks (kSkip when this machine cannot run the case).
int RunRefused(long nr, int err, const char* refused_syscall) {
  if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
      mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return kSkip;
  }
  char dir[] = "/tmp/kata-newmount-XXXXXX";
  if (!mkdtemp(dir)) return kSkip;
  if (!Refuse(nr, err)) {
    rmdir(dir);
    return kSkip;
  }
  int failed = 0;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "  refused %s (%s): %s\n", refused_syscall, std::strerror(err), what);
      ++failed;
    }
  };
  const kata::NewMountSupport& s = kata::ProbeNewMountApi();
  expect(!s.Complete(), "probe saw the refusal");
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
  if (std::strcmp(refused_syscall, "mount_setattr") == 0) opts.flags |= MS_NOSYMFOLLOW;
  expect(!kata::Mount("tmpfs", dir, "tmpfs", opts, &forced, req), "forced new fails");
  expect(forced.err == err, "with the refusal's errno");
  expect(std::strcmp(forced.syscall, refused_syscall) == 0, "naming the refused call");
  expect(!IsMountRoot(dir), "and leaves nothing mounted");

  kata::MountOptions rro;
  rro.recursive_flags = MS_RDONLY;
  kata::SysError refused;
  expect(!kata::Mount("tmpfs", dir, "tmpfs", rro, &refused), "mount(2) refuses rro");
  expect(refused.err == EINVAL && !IsMountRoot(dir), "with EINVAL, mounting nothing");
  rmdir(dir);
  return failed;
}

void InChild(long nr, int err, const char* name) {
  const pid_t pid = fork();
  if (pid == 0) _exit(RunRefused(nr, err, name));
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status));
  if (WEXITSTATUS(status) == kSkip) {
    std::printf("  (skipped: needs root and seccomp)\n");
    return;
  }
  CHECK_EQ(WEXITSTATUS(status), 0);
}

}  // namespace

KATA_TEST(new_api_refused_enosys_falls_back) { InChild(SYS_fsopen, ENOSYS, "fsopen"); }

KATA_TEST(new_api_refused_eperm_falls_back) { InChild(SYS_mount_setattr, EPERM, "mount_setattr"); }

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
}
