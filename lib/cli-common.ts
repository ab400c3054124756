// What the command line's parts share (lib/cli.ts, its commands in lib/cli-commands.ts, and the
// planner's command in lib/runtime/cli-plan.ts, which loads without the addon): the shape of an
// option as util.parseArgs takes it plus what help shows and how its value is checked, the text
// columns of tables and help, reading an input file, where output goes and how an error reads.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';

/** A util.parseArgs option, with the placeholder (`arg`) and the line (`help`) help shows. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** The value's placeholder in help (string options). */
  readonly arg?: string;
  readonly help: string;
  /**
   * Why the value is not one this option takes (undefined: it is). A refused value is bad usage
   * (exit 2), caught before the command runs, like an unknown option.
   */
  readonly check?: (value: string) => string | undefined;
}

/** A string option whose value help shows as `arg`; `check` refuses values it does not take. */
export const stringOption = (arg: string, help: string, check?: (value: string) => string | undefined) =>
  ({ type: 'string', arg, help, ...(check === undefined ? {} : { check }) }) as const;

/** A flag. */
export const booleanOption = (help: string) => ({ type: 'boolean', help }) as const;

/** A string option taking one of `values` (help shows them as `a|b|c`). */
export const choiceOption = (values: readonly string[], help: string, arg = values.join('|')) =>
  stringOption(arg, help, (v) =>
    values.includes(v) ? undefined : `must be one of ${values.map((x) => `'${x}'`).join(', ')}`,
  );

/**
 * Why `p` is not an absolute, normalized directory path (no `..`, `.`, `//` or trailing `/`), the
 * form the Sandbox takes for its allowed roots and sysfs/dev roots; undefined when it is.
 */
export function notAbsolutePath(p: string): string | undefined {
  if (!p.startsWith('/') || p.includes('\0')) return 'must be an absolute path';
  if (posix.normalize(p) !== p || (p.length > 1 && p.endsWith('/')))
    return `must be normalized (${JSON.stringify(posix.normalize(p).replace(/(.)\/$/, '$1'))})`;
  return undefined;
}

/** What util.parseArgs gives for `options`: a string per string option, true per flag given. */
export type OptionValues<O extends Record<string, OptionSpec>> = {
  [K in keyof O]?: O[K]['type'] extends 'string' ? string : boolean;
};

/**
 * A JSON input file. A file that cannot be read is Node's own error (`ENOENT`, `EACCES`, `EISDIR`,
 * with `path`); text that is not JSON is `invalid(message)`, the error the input's own checks
 * give, so a malformed file and a malformed value inside it carry the same code.
 */
export function readJsonFile(file: string, invalid: (message: string) => Error): unknown {
  const text = readFileSync(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    const err = invalid(`${file} is not valid JSON: ${(e as Error).message}`);
    (err as { cause?: unknown }).cause = e;
    throw err;
  }
}

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

/** Where a command writes, line by line (the process's stdout and stderr, or a test's arrays). */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}

/**
 * The message an error gets on the command line: its code once, then what it says, then the
 * refused value (a StorageError's `value`) when the message does not name it: the user sees which
 * storage of the file was refused.
 */
export function describe(e: unknown): string {
  const err = e as Error & { code?: unknown; value?: unknown };
  let message = err instanceof Error ? err.message : String(e);
  const value = typeof err?.value === 'string' ? err.value : undefined;
  if (value !== undefined && value !== '' && !message.includes(value)) message += `; value: ${JSON.stringify(value)}`;
  const code = typeof err?.code === 'string' ? err.code : undefined;
  return code === undefined || message.startsWith(`${code}:`) ? message : `${code}: ${message}`;
}
