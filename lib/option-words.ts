// The option grammar in TypeScript, for the runtime planner (lib/runtime), which must load where
// the addon does not (a host without a prebuild for it). The guest side reads options through the
// native tokenizer (native/core/options.cc NextOptionWord), the one that also feeds mount(2) and
// fsconfig; this is the same grammar, held to it word for word by a test over the fuzz corpora
// and generated lists. Its names differ from the native-backed ones on purpose: one import
// cannot silently stand in for the other.

const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const NUL = 0;

/**
 * The words of option elements (OCI `mounts[].options`, a volume's `options`), as the guest's
 * parser splits them: an element is split at each comma, except a comma inside double quotes
 * (`context="a,b"`) or escaped with a backslash (overlayfs' `lowerdir=/a\,b`); a quote left open
 * ends with its element (or at a NUL, which separates elements where they cross to native).
 * Quotes and backslashes stay in the words; empty words are dropped. Never throws: refusing a
 * word (`loop`, whitespace around it, an unclosed quote, a dangling backslash) is the parser's
 * job (parseMountOptions, ERR_INVALID_MOUNT_OPTION), where it is mounted.
 */
export function splitOptionWords(options: readonly string[] | undefined): string[] {
  const words: string[] = [];
  for (const element of options ?? []) {
    const n = element.length;
    let start = 0;
    let quoted = false;
    for (let i = 0; i <= n; i++) {
      const c = i < n ? element.charCodeAt(i) : NUL;
      if (c === QUOTE) {
        quoted = !quoted;
      } else if (c === BACKSLASH) {
        // The escaped character belongs to the word; a backslash at the end escapes nothing.
        if (i + 1 < n && element.charCodeAt(i + 1) !== NUL) i++;
      } else if (c === NUL || (c === COMMA && !quoted)) {
        if (i > start) words.push(element.slice(start, i));
        start = i + 1;
        quoted = false;
      }
    }
  }
  return words;
}

/**
 * Every `key=value` word of option elements (split by splitOptionWords), keyed by what precedes
 * the first `=`, the last one winning. A value keeps its quotes and escapes, as the word does.
 */
export function optionValueMap(options: readonly string[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const word of splitOptionWords(options)) {
    const eq = word.indexOf('=');
    if (eq > 0) m.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return m;
}
