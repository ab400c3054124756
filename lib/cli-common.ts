// What the command line's two halves share (lib/cli.ts, and the planner's command in
// lib/runtime/cli-plan.ts, which loads without the addon): the shape of an option as
// util.parseArgs takes it plus what help shows, and the text columns of tables and help.

/** A util.parseArgs option, with the placeholder (`arg`) and the line (`help`) help shows. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** The value's placeholder in help (string options). */
  readonly arg?: string;
  readonly help: string;
}

/** A string option whose value help shows as `arg`. */
export const stringOption = (arg: string, help: string) => ({ type: 'string', arg, help }) as const;

/** A flag. */
export const booleanOption = (help: string) => ({ type: 'boolean', help }) as const;

/** What util.parseArgs gives for `options`: a string per string option, true per flag given. */
export type OptionValues<O extends Record<string, OptionSpec>> = {
  [K in keyof O]?: O[K]['type'] extends 'string' ? string : boolean;
};

/**
 * Rows as text columns two spaces apart, every column as wide as its widest cell, each line
 * prefixed by `indent` and without trailing blanks; `rule` underlines the first row (a header)
 * with dashes as wide as each column.
 */
export function columns(rows: readonly (readonly string[])[], { indent = '', rule = false } = {}): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const all = rule && rows.length > 0 ? [rows[0]!, widths.map((w) => '-'.repeat(w)), ...rows.slice(1)] : rows;
  return all.map((r) =>
    `${indent}${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd(),
  );
}
