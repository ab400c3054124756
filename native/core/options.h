// Kata mount option parsing: option words -> mount(2) flags, propagation, data.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kata {

struct MountOptions {
  unsigned long flags = 0;  // MS_* passed to the main mount(2)
  unsigned long propagation =
      0;  // MS_{PRIVATE,SHARED,SLAVE,UNBINDABLE}[|MS_REC], applied separately
  // The flags a clear word (rw, suid, dev, exec, atime, ...) named last: a bind starts from its
  // source's flags, so "not set" and "cleared" differ there.
  unsigned long cleared = 0;
  std::string data;  // everything that is not a flag, comma-joined in order
  // runc's rro/rnosuid/rnodev/rnoexec as MS_* bits. They also hold for the mount itself, so
  // they are in `flags` too (whatever word came later: runc applies them after the plain flags,
  // so `rro,rw` is read-only). Only mount_setattr(AT_RECURSIVE) can apply them to the mounts
  // below a recursive bind; `recursive_word` is the first one, for the legacy API's refusal.
  unsigned long recursive_flags = 0;
  std::string recursive_word;
};

// True when the recursive attributes reach mounts mount(2) cannot: only a recursive bind
// (rbind) brings mounts below the new one. A new superblock and a plain bind have none, so
// there the recursive attributes are exactly the plain ones in `flags`, which mount(2) applies.
bool RecursiveNeedsNewApi(const MountOptions& opts);

enum class OptionError {
  kNone = 0,
  kLoop,     // "loop" needs losetup; an agent must refuse it rather than half-handle it
  kTooLong,  // data would not fit in the page the kernel copies, even with overlayfs' lowerdir
             // entries relative to their common parent (CompactLowerdir)
  kSpace,    // a word starts or ends with whitespace: no API would read it the same way
  kQuote,    // a word with an unclosed double quote
  kEscape,   // a word ending in a backslash that escapes nothing (it would join the next word)
  // Not returned by ParseMountOptions, which does not know the API: a caller that will mount
  // through mount(2) refuses `recursive_word` with it when RecursiveNeedsNewApi.
  kRecursiveLegacy,
};

// Why the word (for kTooLong: the data) was refused and what to do instead, as a clause that
// follows the refused word in a message ("mount option 'loop' <reason>"); "" for kNone.
// Static text: the refusal's kind, word and reason are all the caller needs to explain it.
const char* OptionErrorReason(OptionError e);

// The one option tokenizer, used by the parser, by the new API to hand data words to fsconfig,
// and (through the binding) by drivers that read options themselves. Words end at a comma or at
// '\0' (between the caller's elements; a quote left open ends there too), except a comma inside
// double quotes (context="a,b") or escaped with a backslash (overlayfs' lowerdir=/a\,b). Quotes and
// backslashes stay in the word: the filesystem interprets escapes (overlayfs unescapes its paths),
// and the parser removes quotes that protect no comma. Returns false at the end of `list`; `*pos`
// starts at 0.
bool NextOptionWord(std::string_view list, size_t* pos, std::string_view* word);

// `list` holds the caller's option elements separated by '\0' (so one string crosses from JS);
// each element is split into words by NextOptionWord. Words apply in order, later wins. A data
// word's double quotes are removed unless they protect a comma (then mount(2) needs them, for
// the kernel's own quote-aware parsers), so both mount APIs hand the filesystem the same value.
// The data must fit the page mount(2) copies (MaxMountDataLength), measured after CompactLowerdir
// when it holds overlayfs' lowerdir=, since that is what Mount hands the kernel then.
// On error, `bad` receives the offending word (or the data string for kTooLong).
OptionError ParseMountOptions(std::string_view list, MountOptions* out, std::string* bad);

// The largest data string mount(2) passes through intact: the kernel copies one page and
// forces its last byte to NUL.
size_t MaxMountDataLength();

// The entries of an overlayfs lowerdir value, split at each ':' that no backslash escapes (the
// kernel's ovl_parse_param_split_lowerdirs). An empty entry is the "::" that starts the
// data-only layers. Escapes stay in the entries: overlayfs unescapes each path itself.
void SplitLowerdir(std::string_view value, std::vector<std::string_view>* entries);

// overlayfs names every lower layer by its path in one lowerdir= value, so layers that share a
// directory repeat it once per layer: 45 layers under /run/kata-containers/<64-hex id>/multi-layer
// outgrow the page mount(2) copies. containerd and Kata's agent name them relative to their
// common parent instead and mount from that directory (overlayfs resolves a relative layer
// against the caller's working directory). When `data` has lowerdir= words whose entries are all
// absolute and share a parent deeper than "/" (holding no backslash, so it can be opened as
// written), sets `parent` to it and `compacted` to `data` with those entries relative to it, and
// returns true. Other words are kept as they are.
bool CompactLowerdir(std::string_view data, std::string* parent, std::string* compacted);

}  // namespace kata
