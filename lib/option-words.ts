// Reading `key=value` words of the host's mount option lists for the runtime planner (lib/runtime),
// which must load without the addon. The guest side (lib/storage.ts) reads options through the
// native tokenizer instead, the one that also feeds mount(2) and fsconfig.

/** Every `key=value` word of an option list (elements are also split on commas), last one wins. */
export function optionValues(options: readonly string[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const element of options ?? []) {
    for (const word of element.split(',')) {
      const eq = word.indexOf('=');
      if (eq > 0) m.set(word.slice(0, eq), word.slice(eq + 1));
    }
  }
  return m;
}

/** The option list without the words for which `drop(word)` is true. */
export function withoutOptions(options: readonly string[] | undefined, drop: (word: string) => boolean): string[] {
  const out: string[] = [];
  for (const element of options ?? []) {
    const kept = element.split(',').filter((w) => w !== '' && !drop(w));
    if (kept.length > 0) out.push(kept.join(','));
  }
  return out;
}
