#include "dm.h"
#include "fd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace kata {
namespace {

bool IsHex(const std::string& s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// Kata's runtime: minBlockSize 1<<9, maxBlockSize 1<<19; the kernel wants powers of two.
bool ValidBlockSize(uint64_t n) { return n >= 512 && n <= (1u << 19) && (n & (n - 1)) == 0; }

bool ValidDevNumber(const std::string& s) {
  const size_t colon = s.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size() || colon > 10 ||
      s.size() - colon - 1 > 10) {
    return false;
  }
  for (size_t i = 0; i < s.size(); ++i) {
    if (i != colon && !(s[i] >= '0' && s[i] <= '9')) return false;
  }
  return true;
}

// dm_ioctl buffers are 8-byte aligned; 16 KiB holds any table we load and any reply we read.
constexpr size_t kBufferSize = 16384;

struct DmBuffer {
  std::vector<uint64_t> words = std::vector<uint64_t>(kBufferSize / sizeof(uint64_t), 0);
  dm_ioctl* io() { return reinterpret_cast<dm_ioctl*>(words.data()); }
  char* bytes() { return reinterpret_cast<char*>(words.data()); }
};

void Prepare(DmBuffer* b, const std::string& name, uint32_t flags) {
  std::memset(b->bytes(), 0, kBufferSize);
  dm_ioctl* io = b->io();
  io->version[0] = DM_VERSION_MAJOR;
  io->version[1] = 0;
  io->version[2] = 0;
  io->data_size = kBufferSize;
  io->data_start = sizeof(dm_ioctl);
  io->flags = flags;
  std::memcpy(io->name, name.data(), std::min(name.size(), sizeof(io->name) - 1));
}

// mknod(3) is a symbol of glibc 2.33; the addon's floor is 2.28 (glibc_compat.cc), and mknodat(2)
// exists on every architecture (arm64 has no mknod(2)).
int MakeNode(const std::string& path, dev_t dev) {
  return static_cast<int>(syscall(SYS_mknodat, AT_FDCWD, path.c_str(), S_IFBLK | 0600, dev));
}

bool Ioctl(int fd, unsigned long cmd, const char* what, DmBuffer* b, const std::string& name,
           SysError* error) {
  if (ioctl(fd, cmd, b->io()) != 0) {
    error->Set(errno, what, name);
    return false;
  }
  return true;
}

}  // namespace

bool VerityTable(const VerityInfo& v, const std::string& data_dev, std::string* params,
                 uint64_t* sectors, const char** bad) {
  const std::string alg = Lower(v.hashtype);
  size_t digits = 0;
  if (alg == "sha256") {
    digits = 64;
  } else if (alg == "sha1") {
    digits = 40;
  } else {
    *bad = "hashtype";
    return false;
  }
  if (v.hash.size() != digits || !IsHex(v.hash)) return *bad = "hash", false;
  if (v.blocknum == 0 || v.blocknum > UINT32_MAX) return *bad = "blocknum", false;
  if (!ValidBlockSize(v.blocksize)) return *bad = "blocksize", false;
  if (!ValidBlockSize(v.hashsize)) return *bad = "hashsize", false;
  // blocknum < 2^32 and blocksize <= 2^19: the product cannot overflow 64 bits.
  const uint64_t data_bytes = v.blocknum * v.blocksize;
  if (v.offset % v.hashsize != 0 || v.offset < data_bytes) return *bad = "offset", false;
  const bool no_salt = v.salt.empty() || v.salt == "-";
  // The kernel takes at most 256 bytes of salt, as an even number of hex digits.
  if (!no_salt && (v.salt.size() % 2 != 0 || v.salt.size() > 512 || !IsHex(v.salt))) {
    return *bad = "salt", false;
  }
  if (v.hash_type > 1) return *bad = "hash_type", false;
  if (!ValidDevNumber(data_dev)) return *bad = "data_dev", false;
  // veritysetup writes a 512-byte superblock at the offset, padded to one hash block.
  const uint64_t hash_start = v.offset / v.hashsize + (v.no_superblock ? 0 : 1);
  *params = std::to_string(v.hash_type) + ' ' + data_dev + ' ' + data_dev + ' ' +
            std::to_string(v.blocksize) + ' ' + std::to_string(v.hashsize) + ' ' +
            std::to_string(v.blocknum) + ' ' + std::to_string(hash_start) + ' ' + alg + ' ' +
            Lower(v.hash) + ' ' + (no_salt ? std::string("-") : Lower(v.salt));
  *sectors = data_bytes / 512;
  return true;
}

bool DmCreateVerity(const std::string& control, const std::string& name, uint64_t sectors,
                    const std::string& params, const std::string& node, unsigned* major,
                    unsigned* minor, SysError* error) {
  if (name.empty() || name.size() >= DM_NAME_LEN || name.find('/') != std::string::npos) {
    error->Set(EINVAL, "ioctl(DM_DEV_CREATE)", name);
    return false;
  }
  const size_t table_bytes = sizeof(dm_ioctl) + sizeof(dm_target_spec) + params.size() + 1;
  if (table_bytes + 8 > kBufferSize) {
    error->Set(E2BIG, "ioctl(DM_TABLE_LOAD)", name);
    return false;
  }
  Fd fd(open(control.c_str(), O_RDWR | O_CLOEXEC));
  if (fd.get() < 0) {
    error->Set(errno, "open", control);
    return false;
  }
  DmBuffer b;
  Prepare(&b, name, DM_READONLY_FLAG);
  if (!Ioctl(fd.get(), DM_DEV_CREATE, "ioctl(DM_DEV_CREATE)", &b, name, error)) return false;

  auto undo = [&]() {
    const int saved = errno;
    DmBuffer r;
    Prepare(&r, name, 0);
    (void)ioctl(fd.get(), DM_DEV_REMOVE, r.io());
    errno = saved;
    return false;
  };

  Prepare(&b, name, DM_READONLY_FLAG);
  dm_ioctl* io = b.io();
  io->target_count = 1;
  auto* spec = reinterpret_cast<dm_target_spec*>(b.bytes() + sizeof(dm_ioctl));
  spec->sector_start = 0;
  spec->length = sectors;
  spec->status = 0;
  std::strncpy(spec->target_type, "verity", sizeof(spec->target_type) - 1);
  char* p = reinterpret_cast<char*>(spec + 1);
  std::memcpy(p, params.c_str(), params.size() + 1);
  const size_t spec_bytes = (sizeof(dm_target_spec) + params.size() + 1 + 7) & ~size_t{7};
  spec->next = static_cast<uint32_t>(spec_bytes);
  io->data_size = static_cast<uint32_t>(sizeof(dm_ioctl) + spec_bytes);
  if (!Ioctl(fd.get(), DM_TABLE_LOAD, "ioctl(DM_TABLE_LOAD)", &b, name, error)) return undo();

  Prepare(&b, name, 0);  // DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes: the table goes live
  if (!Ioctl(fd.get(), DM_DEV_SUSPEND, "ioctl(DM_DEV_SUSPEND)", &b, name, error)) return undo();
  const dev_t dev = static_cast<dev_t>(b.io()->dev);
  *major = ::major(dev);
  *minor = ::minor(dev);

  if (MakeNode(node, dev) != 0) {
    if (errno != EEXIST || unlink(node.c_str()) != 0 || MakeNode(node, dev) != 0) {
      error->Set(errno, "mknod", node);
      return undo();
    }
  }
  return true;
}

bool DmRemove(const std::string& control, const std::string& name, const std::string& node,
              bool deferred, SysError* error) {
  Fd fd(open(control.c_str(), O_RDWR | O_CLOEXEC));
  if (fd.get() < 0) {
    error->Set(errno, "open", control);
    return false;
  }
  DmBuffer b;
  Prepare(&b, name, deferred ? DM_DEFERRED_REMOVE : 0);
  if (ioctl(fd.get(), DM_DEV_REMOVE, b.io()) != 0 && errno != ENXIO) {
    error->Set(errno, "ioctl(DM_DEV_REMOVE)", name);
    return false;
  }
  if (!node.empty() && unlink(node.c_str()) != 0 && errno != ENOENT) {
    error->Set(errno, "unlink", node);
    return false;
  }
  return true;
}

}  // namespace kata
