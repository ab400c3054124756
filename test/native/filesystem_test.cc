#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "beneath.h"
#include "check.h"
#include "filelock.h"
#include "fsgroup.h"
#include "hugepages.h"
#include "tree.h"

using kata::BeneathError;
using kata::SysError;

namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/kata-filesystem-XXXXXX";
  char* d = mkdtemp(tmpl);
  return d ? d : "";
}

bool Exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

void Touch(const std::string& p, const char* text = "x") { std::ofstream(p) << text; }

void Cleanup(const std::string& dir) {
  SysError e;
  kata::RemoveTree(dir, &e);
}

}  // namespace

KATA_TEST(check_beneath_reports_symlinks_and_non_dirs) {
  const std::string root = TempDir();
  mkdir((root + "/a").c_str(), 0755);
  symlink("/etc", (root + "/a/link").c_str());
  Touch(root + "/a/file");
  BeneathError r;
  std::string bad;
  SysError e;
  CHECK(kata::CheckBeneath(root, "a/b/c", &r, &bad, &e));
  CHECK(r == BeneathError::kNone);
  CHECK(kata::CheckBeneath(root, "a/link/x", &r, &bad, &e));
  CHECK(r == BeneathError::kSymlink);
  CHECK_EQ(bad, root + "/a/link");
  CHECK(kata::CheckBeneath(root, "a/link", &r, &bad, &e));
  CHECK(r == BeneathError::kSymlink);
  CHECK(kata::CheckBeneath(root, "a/file/x", &r, &bad, &e));
  CHECK(r == BeneathError::kNotDir);
  CHECK(kata::CheckBeneath(root + "/missing", "x/y", &r, &bad, &e));
  CHECK(r == BeneathError::kNone);
  Cleanup(root);
}

KATA_TEST(check_beneath_hands_over_the_deepest_directory_it_reached) {
  const std::string root = TempDir();
  mkdir((root + "/a").c_str(), 0755);
  mkdir((root + "/a/b").c_str(), 0755);
  symlink("/etc", (root + "/a/link").c_str());
  const int root_fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(root_fd >= 0);
  BeneathError r;
  std::string bad;
  SysError e;
  struct stat want, got;
  {
    // a/b exist, c does not: the walk got to a/b, two components down.
    kata::BeneathReach reach;
    CHECK(kata::CheckBeneathAt(root_fd, root, "a/b/c/d", &r, &bad, &e, nullptr, &reach));
    CHECK(r == BeneathError::kNone);
    CHECK_EQ(reach.depth, size_t{2});
    CHECK(reach.dir.ok());
    CHECK(stat((root + "/a/b").c_str(), &want) == 0 && fstat(reach.dir.get(), &got) == 0);
    CHECK(want.st_ino == got.st_ino && want.st_dev == got.st_dev);
  }
  {
    // The mount point itself exists: the walk stops at its directory, never opening it.
    kata::BeneathReach reach;
    CHECK(kata::CheckBeneathAt(root_fd, root, "a/b", &r, &bad, &e, nullptr, &reach));
    CHECK(r == BeneathError::kNone);
    CHECK_EQ(reach.depth, size_t{1});
  }
  {
    // Nothing on the way exists: the root is as far as it got, no descriptor handed over.
    kata::BeneathReach reach;
    CHECK(kata::CheckBeneathAt(root_fd, root, "x/y", &r, &bad, &e, nullptr, &reach));
    CHECK(r == BeneathError::kNone);
    CHECK_EQ(reach.depth, size_t{0});
    CHECK(!reach.dir.ok());
  }
  {
    // A symlink on the way is still refused by name, whichever call found it.
    kata::BeneathReach reach;
    CHECK(kata::CheckBeneathAt(root_fd, root, "a/link/x", &r, &bad, &e, nullptr, &reach));
    CHECK(r == BeneathError::kSymlink);
    CHECK_EQ(bad, root + "/a/link");
  }
  close(root_fd);
  Cleanup(root);
}

KATA_TEST(make_beneath_creates_only_what_is_missing_and_refuses_symlinks) {
  const std::string root = TempDir();
  std::vector<std::string> created;
  SysError e;
  CHECK(kata::MakeBeneath(root, "a/b/c", 0755, false, &created, &e));
  CHECK_EQ(created.size(), size_t{3});
  CHECK_EQ(created.back(), root + "/a/b/c");
  CHECK(kata::MakeBeneath(root, "a/b/d", 0755, false, &created, &e));
  CHECK_EQ(created.size(), size_t{1});
  symlink("/tmp", (root + "/a/evil").c_str());
  CHECK(!kata::MakeBeneath(root, "a/evil/x", 0755, false, &created, &e));
  CHECK_EQ(e.err, ELOOP);
  CHECK(created.empty());
  SysError e2;
  CHECK(kata::MakeBeneath(root, "f/leaf", 0755, true, &created, &e2));
  CHECK_EQ(created.size(), size_t{2});
  struct stat st;
  CHECK(lstat((root + "/f/leaf").c_str(), &st) == 0 && S_ISREG(st.st_mode));
  SysError e3;
  CHECK(!kata::MakeBeneath(root, "a/evil", 0755, true, &created, &e3));
  CHECK_EQ(e3.err, ELOOP);
  mkdir((root + "/p").c_str(), 0755);
  Touch(root + "/p/blocker");
  SysError e6;
  CHECK(!kata::MakeBeneath(root, "p/blocker/x", 0755, false, &created, &e6));
  CHECK_EQ(e6.err, ENOTDIR);
  CHECK(created.empty());
  Cleanup(root);
  CHECK(!Exists(root));
}

KATA_TEST(remove_tree_does_not_follow_symlinks) {
  const std::string root = TempDir();
  const std::string outside = TempDir();
  Touch(outside + "/keep");
  mkdir((root + "/t").c_str(), 0755);
  mkdir((root + "/t/sub").c_str(), 0700);
  Touch(root + "/t/sub/f");
  symlink(outside.c_str(), (root + "/t/link").c_str());
  SysError e;
  CHECK(kata::RemoveTree(root + "/t", &e));
  CHECK(!Exists(root + "/t"));
  CHECK(Exists(outside + "/keep"));
  CHECK(kata::RemoveTree(root + "/t", &e));  // already gone: fine
  Touch(root + "/file");
  CHECK(kata::RemoveTree(root + "/file", &e));
  CHECK(!Exists(root + "/file"));
  Cleanup(root);
  Cleanup(outside);
}

KATA_TEST(fs_group_applies_kata_bits) {
  if (geteuid() != 0) return;  // chgrp to an arbitrary group needs root
  const std::string root = TempDir();
  mkdir((root + "/d").c_str(), 0700);
  Touch(root + "/d/f");
  chmod((root + "/d/f").c_str(), 0600);
  symlink("/etc/passwd", (root + "/d/l").c_str());
  kata::FsGroupResult r;
  SysError e;
  CHECK(kata::ApplyFsGroup(root, 4242, false, false, &r, &e));
  CHECK(!r.skipped);
  CHECK_EQ(r.changed, 3L);
  struct stat st;
  CHECK(stat((root + "/d/f").c_str(), &st) == 0 && st.st_gid == 4242 &&
        (st.st_mode & 07777) == 0660);
  CHECK(stat((root + "/d").c_str(), &st) == 0 && (st.st_mode & 07777) == 02770);
  CHECK(lstat((root + "/d/l").c_str(), &st) == 0 && st.st_gid != 4242);
  CHECK(stat("/etc/passwd", &st) == 0 && st.st_gid != 4242);
  CHECK(kata::ApplyFsGroup(root, 4242, false, true, &r, &e));
  CHECK(r.skipped);
  CHECK(kata::ApplyFsGroup(root + "/d/f", 4243, true, false, &r, &e));
  CHECK(stat((root + "/d/f").c_str(), &st) == 0 && st.st_gid == 4243);
  CHECK(!kata::ApplyFsGroup(root + "/missing", 1, false, false, &r, &e));
  CHECK_EQ(e.err, ENOENT);
  Cleanup(root);
}

KATA_TEST(hugepages_reads_back_the_count) {
  const std::string sys = TempDir();
  std::vector<std::string> created;
  SysError e;
  CHECK(kata::MakeBeneath(sys, "kernel/mm/hugepages/hugepages-2048kB", 0755, false, &created, &e));
  const std::string file = sys + "/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
  Touch(file, "3\n");
  unsigned long previous = 0, allocated = 0;
  CHECK(kata::EnsureHugepages(sys, 2048, 2, &previous, &allocated, &e));
  CHECK_EQ(previous, 3ul);
  CHECK_EQ(allocated, 3ul);  // already enough: nothing written
  CHECK(kata::EnsureHugepages(sys, 2048, 8, &previous, &allocated, &e));
  CHECK_EQ(allocated, 8ul);
  CHECK(!kata::EnsureHugepages(sys, 1048576, 1, &previous, &allocated, &e));
  CHECK_EQ(e.err, ENOENT);
  Cleanup(sys);
}

KATA_TEST(file_lock_is_held_by_one_open_until_it_closes) {
  // The journal's lock: a second open of the file (in the same process, as a second Sandbox
  // would) is refused while the first holds it, and takes it once the first is closed.
  char dir[] = "/tmp/kata-lock-XXXXXX";
  CHECK(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/journal.lock";
  const int a = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  const int b = open(path.c_str(), O_RDWR | O_CLOEXEC);
  CHECK(a >= 0 && b >= 0);
  bool elsewhere = true;
  kata::SysError e;
  CHECK(kata::TryLockFile(a, &elsewhere, &e) && !elsewhere);
  CHECK(!kata::TryLockFile(b, &elsewhere, &e) && elsewhere);
  close(a);
  CHECK(kata::TryLockFile(b, &elsewhere, &e));
  close(b);
  CHECK(!kata::TryLockFile(-1, &elsewhere, &e) && !elsewhere && e.err == EBADF);
  unlink(path.c_str());
  rmdir(dir);
}
