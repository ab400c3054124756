// Mount option lists come from the host: any bytes, any length. The parser must never crash,
// and what it accepts must be something mount(2) can take.
#include <sys/mount.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz.h"
#include "options.h"

namespace {

constexpr unsigned long kPropagation = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE;
constexpr unsigned long kKnownFlags =
    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS | MS_REMOUNT | MS_MANDLOCK |
    MS_DIRSYNC | MS_NOSYMFOLLOW | MS_NOATIME | MS_NODIRATIME | MS_BIND | MS_REC | MS_SILENT |
    MS_RELATIME | MS_I_VERSION | MS_STRICTATIME | MS_LAZYTIME;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string list(reinterpret_cast<const char*>(data), size);
  kata::MountOptions a, b;
  std::string bad_a, bad_b;
  const kata::OptionError ea = kata::ParseMountOptions(list, &a, &bad_a);
  const kata::OptionError eb = kata::ParseMountOptions(list, &b, &bad_b);
  Require(ea == eb && bad_a == bad_b);  // deterministic, no hidden state
  if (ea != kata::OptionError::kNone) {
    // A refusal says why, and names what it refused: the data for kTooLong, else one of the
    // words the tokenizer split (what the message quotes is what the caller wrote).
    Require(kata::OptionErrorReason(ea)[0] != '\0');
    if (ea == kata::OptionError::kTooLong) return 0;
    bool found = false;
    std::string_view word;
    for (size_t pos = 0; !found && kata::NextOptionWord(list, &pos, &word);) found = word == bad_a;
    Require(found && !bad_a.empty());
    return 0;
  }
  Require(a.flags == b.flags && a.propagation == b.propagation && a.data == b.data);
  // What mount(2) is handed fits its page: the data itself, or with overlayfs' layers relative to
  // their common parent (what Mount passes then), and compacting keeps every other word.
  if (a.data.size() > kata::MaxMountDataLength()) {
    std::string parent, compacted;
    Require(kata::CompactLowerdir(a.data, &parent, &compacted));
    Require(compacted.size() <= kata::MaxMountDataLength());
    Require(!parent.empty() && parent.front() == '/');
  }
  Require(a.data.find('\0') == std::string::npos);
  Require((a.flags & ~kKnownFlags) == 0);
  Require((a.flags & kPropagation) == 0);  // propagation never leaks into the main mount's flags
  // A recursive attribute holds for the mount itself, whatever word followed it (rro,rw is ro).
  Require((a.flags & a.recursive_flags) == a.recursive_flags &&
          (a.cleared & a.recursive_flags) == 0);
  // mount(2) is refused exactly where it cannot reach: mounts below an rbind.
  Require(kata::RecursiveNeedsNewApi(a) ==
          (a.recursive_flags != 0 && (a.flags & MS_BIND) && (a.flags & MS_REC)));
  Require((a.propagation & ~(kPropagation | MS_REC)) == 0);
  // Empty words are dropped, so data never starts with a separator (a quoted comma may end it).
  Require(a.data.empty() || a.data.front() != ',');
  // The new API splits the data again with the same tokenizer: it must find exactly the words
  // the parser joined, none empty, so fsconfig and mount(2) see the same words.
  std::string rejoined;
  std::string_view word;
  for (size_t pos = 0; kata::NextOptionWord(a.data, &pos, &word);) {
    if (a.data.empty()) break;
    Require(!word.empty());
    if (!rejoined.empty()) rejoined.push_back(',');
    rejoined.append(word);
  }
  Require(rejoined == a.data);
  return 0;
}
