// The verity table builder (pure) and the device-mapper calls' error paths, which need no
// device-mapper in the kernel.
#include <errno.h>

#include <string>

#include "check.h"
#include "dm.h"

namespace {

kata::VerityInfo Good() {
  kata::VerityInfo v;
  v.hashtype = "sha256";
  v.hash = std::string(64, 'a');
  v.blocknum = 1024;
  v.blocksize = 4096;
  v.hashsize = 4096;
  v.offset = 4194304;
  return v;
}

const char* Refused(const kata::VerityInfo& v, const std::string& dev = "7:0") {
  std::string params;
  uint64_t sectors = 0;
  const char* bad = "";
  return kata::VerityTable(v, dev, &params, &sectors, &bad) ? "" : bad;
}

}  // namespace

KATA_TEST(verity_table_matches_veritysetup_layout) {
  std::string params;
  uint64_t sectors = 0;
  const char* bad = "";
  CHECK(kata::VerityTable(Good(), "7:3", &params, &sectors, &bad));
  CHECK_EQ(params, "1 7:3 7:3 4096 4096 1024 1025 sha256 " + std::string(64, 'a') + " -");
  CHECK_EQ(sectors, uint64_t{8192});
  kata::VerityInfo v = Good();
  v.no_superblock = true;
  v.hash_type = 0;
  v.salt = "00FF";
  CHECK(kata::VerityTable(v, "254:16", &params, &sectors, &bad));
  CHECK_EQ(params, "0 254:16 254:16 4096 4096 1024 1024 sha256 " + std::string(64, 'a') + " 00ff");
}

KATA_TEST(verity_table_refuses_each_field) {
  // Each case spoils one field of a good record; the refusal names that field.
  const struct {
    const char* field;
    void (*spoil)(kata::VerityInfo&);
  } cases[] = {
      {"hashtype", [](kata::VerityInfo& v) { v.hashtype = "md5"; }},
      {"hash", [](kata::VerityInfo& v) { v.hash.pop_back(); }},
      {"blocknum", [](kata::VerityInfo& v) { v.blocknum = 0; }},
      {"blocksize", [](kata::VerityInfo& v) { v.blocksize = 4095; }},
      {"hashsize", [](kata::VerityInfo& v) { v.hashsize = 256; }},
      {"offset", [](kata::VerityInfo& v) { v.offset = 4096; }},
      {"salt", [](kata::VerityInfo& v) { v.salt = "a b"; }},
      {"hash_type", [](kata::VerityInfo& v) { v.hash_type = 2; }},
  };
  for (const auto& c : cases) {
    kata::VerityInfo v = Good();
    c.spoil(v);
    const std::string refused = Refused(v);
    if (refused != c.field)
      std::fprintf(stderr, "  spoiling %s: refused %s\n", c.field, refused.c_str());
    CHECK_EQ(refused, c.field);
  }
  CHECK_EQ(std::string(Refused(Good(), "/dev/vda")), "data_dev");
  CHECK_EQ(std::string(Refused(Good(), "7:")), "data_dev");
}

KATA_TEST(dm_calls_report_the_control_node) {
  kata::SysError e;
  unsigned major = 0, minor = 0;
  CHECK(!kata::DmCreateVerity("/nonexistent/control", "kata-verity-x", 8, "p", "/nonexistent/node",
                              &major, &minor, &e));
  CHECK_EQ(e.err, ENOENT);
  CHECK_EQ(std::string(e.syscall), "open");
  kata::SysError too_long;
  CHECK(!kata::DmCreateVerity("/dev/null", std::string(200, 'n'), 8, "p", "/x", &major, &minor,
                              &too_long));
  CHECK_EQ(too_long.err, EINVAL);
  // /dev/null opens but is no device-mapper: the first ioctl says so.
  kata::SysError not_dm;
  CHECK(!kata::DmCreateVerity("/dev/null", "kata-verity-x", 8, "p", "/x", &major, &minor, &not_dm));
  CHECK_EQ(not_dm.err, ENOTTY);
  CHECK_EQ(std::string(not_dm.syscall), "ioctl(DM_DEV_CREATE)");
  kata::SysError rm;
  CHECK(!kata::DmRemove("/dev/null", "kata-verity-x", "", true, &rm));
  CHECK_EQ(rm.err, ENOTTY);
}
