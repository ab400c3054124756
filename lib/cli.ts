#!/usr/bin/env node
// kata-storage command line: a window onto the library for operators and new users. Arguments go
// through Node's util.parseArgs (strict: an unknown option or a missing value is an error naming
// it). The library, and with it the native addon, is loaded only by the command that needs it, so
// help and --version work even where the addon cannot load.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { describe, type Io, type OptionSpec } from './cli-common';
import { commands, type Values } from './cli-commands';

export type { Io };

/**
 * The process's stdout and stderr, line by line. A stream whose reader went away (`| head -1`:
 * EPIPE, which Node reports as an 'error' event rather than a signal) is closed quietly and
 * written no more: the command goes on, so what it mounted is still released, and ends with its
 * own status instead of dying on an unhandled 'error' with its mounts left behind.
 */
function processIo(): Io {
  const line = (stream: NodeJS.WriteStream): ((l: string) => void) => {
    let open = true;
    stream.on('error', () => {
      open = false;
    });
    return (l) => {
      if (open) stream.write(`${l}\n`);
    };
  };
  return { out: line(process.stdout), err: line(process.stderr) };
}

const help: OptionSpec = { type: 'boolean', short: 'h', help: 'show this help' };

function version(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Help is read in an 80-column terminal. */
const WIDTH = 80;

/**
 * `line` in lines no wider than `width`, broken at spaces, each continuation indented `hang`
 * more than the line itself. A word longer than the line stays whole.
 */
function wrap(line: string, width = WIDTH, hang = 2): string[] {
  const lead = ' '.repeat(line.length - line.trimStart().length + hang);
  const out: string[] = [];
  let rest = line;
  while (rest.length > width) {
    const cut = rest.lastIndexOf(' ', width);
    if (cut <= lead.length) break;
    out.push(rest.slice(0, cut).trimEnd());
    rest = `${lead}${rest.slice(cut + 1).trimStart()}`;
  }
  out.push(rest);
  return out;
}

/**
 * A command's text for its help, under `indent`: each line of the source a paragraph, filled to
 * WIDTH; a line that starts with two spaces (a JSON example) kept as it is written.
 */
function reflow(text: string, indent = ''): string[] {
  return text.split('\n').flatMap((l) => (l.startsWith('  ') ? [`${indent}${l}`] : wrap(`${indent}${l}`, WIDTH, 0)));
}

/** A shell command broken with ` \` so each piece still pastes as one command. */
function wrapCommand(line: string): string[] {
  const pieces = wrap(line, WIDTH - 2);
  return pieces.map((p, i) => (i < pieces.length - 1 ? `${p} \\` : p));
}

/**
 * Name and description rows within WIDTH: the description beside the names while it has room
 * (wrapped in its column), else under its name, indented.
 */
function helpRows(rows: readonly (readonly [string, string])[], indent = '  '): string[] {
  const nameWidth = Math.max(...rows.map(([n]) => n.length));
  const column = indent.length + nameWidth + 2;
  const lines: string[] = [];
  for (const [name, text] of rows) {
    if (WIDTH - column >= 44) {
      const body = wrap(text, WIDTH - column).map((l) => l.trimStart());
      lines.push(`${indent}${name.padEnd(nameWidth)}  ${body[0]}`.trimEnd());
      for (const l of body.slice(1)) lines.push(`${' '.repeat(column + 2)}${l}`);
    } else {
      lines.push(`${indent}${name}`);
      lines.push(...wrap(`${indent}      ${text}`, WIDTH, 0));
    }
  }
  return lines;
}

function optionLines(options: Record<string, OptionSpec>): string[] {
  const rows = Object.entries({ ...options, help }).map(
    ([name, o]) =>
      [
        `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`,
        o.help,
      ] as const,
  );
  return helpRows(rows);
}

function commandHelp(name: string): string {
  const c = commands[name]!;
  const opts = Object.keys(c.options).length > 0 ? ' [options]' : '';
  return [
    `usage: kata-storage ${name}${c.args ? ` ${c.args}` : ''}${opts}`,
    '',
    ...reflow(c.details ?? c.summary),
    ...(c.input === undefined ? [] : ['', 'input:', ...reflow(c.input, '  ')]),
    '',
    'options:',
    ...optionLines(c.options),
    '',
    'example:',
    ...wrapCommand(`  ${c.example}`),
  ].join('\n');
}

const HELP_HELP = [
  'usage: kata-storage help [<command>]',
  '',
  "The program's help, or a command's (the same as kata-storage <command> --help).",
  '',
  'example:',
  '  kata-storage help apply',
].join('\n');

function programHelp(): string {
  return [
    'usage: kata-storage <command> [options]',
    '',
    'commands:',
    ...helpRows([
      ...Object.entries(commands).map(([n, c]) => [n, c.summary] as const),
      ['help', 'help for a command (or: kata-storage <command> --help)'],
    ]),
    '',
    'options:',
    '  -h, --help     show this help',
    '  -V, --version  print the version',
    '',
    'example:',
    '  kata-storage apply storages.json --keep && kata-storage release storages.json',
  ].join('\n');
}

function usageError(prog: string, message: string, io: Io): number {
  io.err(`${prog}: ${message}`);
  io.err(`Run '${prog} --help' for usage.`);
  return 2;
}

/** Runs one command line; returns the exit status (0 ok, 1 the operation failed, 2 bad usage). */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.err(programHelp());
    return 2;
  }
  if (first === '--help' || first === '-h') {
    io.out(programHelp());
    return 0;
  }
  if (first === '--version' || first === '-V') {
    io.out(version());
    return 0;
  }
  if (first === 'help') {
    let parsed: { values: Values; positionals: string[] };
    try {
      parsed = parseArgs({ args: rest, options: { help }, allowPositionals: true, strict: true }) as typeof parsed;
    } catch (e) {
      return usageError('kata-storage help', (e as Error).message, io);
    }
    const [topic, extra] = parsed.positionals;
    if (parsed.values.help === true) {
      io.out(HELP_HELP);
      return 0;
    }
    if (extra !== undefined) return usageError('kata-storage help', `unexpected argument '${extra}'`, io);
    if (topic === undefined) {
      io.out(programHelp());
      return 0;
    }
    if (!Object.hasOwn(commands, topic)) return usageError('kata-storage', `unknown command '${topic}'`, io);
    io.out(commandHelp(topic));
    return 0;
  }
  if (first.startsWith('-'))
    return usageError('kata-storage', `unknown option '${first}' (options come after the command)`, io);
  if (!Object.hasOwn(commands, first)) {
    return usageError('kata-storage', `unknown command '${first}' (commands: ${Object.keys(commands).join(', ')})`, io);
  }
  const cmd = commands[first]!;
  const prog = `kata-storage ${first}`;
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...cmd.options, help },
      allowPositionals: true,
      strict: true,
    }) as typeof parsed;
  } catch (e) {
    return usageError(prog, (e as Error).message, io);
  }
  if (parsed.values.help === true) {
    io.out(commandHelp(first));
    return 0;
  }
  for (const [name, spec] of Object.entries(cmd.options)) {
    const value = parsed.values[name];
    const why = typeof value === 'string' ? spec.check?.(value) : undefined;
    if (why !== undefined) return usageError(prog, `--${name} ${why}, got '${value as string}'`, io);
  }
  const [min, max] = cmd.positionals;
  const n = parsed.positionals.length;
  if (n < min) return usageError(prog, `missing ${cmd.args.split(' ')[n] ?? 'argument'}`, io);
  if (n > max) return usageError(prog, `unexpected argument '${parsed.positionals[max]}'`, io);
  try {
    // Inside the try: a check that needs the library fails as the command would (exit 1).
    const badArgs = cmd.checkArgs?.(parsed.positionals);
    if (badArgs !== undefined) return usageError(prog, badArgs, io);
    return await cmd.run(parsed.positionals, parsed.values, io);
  } catch (e) {
    io.err(`${prog}: ${describe(e)}`);
    return 1;
  }
}

/** main() for a process: never throws, resolves with the exit status. */
export async function run(argv: string[], io: Io = processIo()): Promise<number> {
  try {
    return await main(argv, io);
  } catch (e) {
    io.err(`kata-storage: ${describe(e)}`);
    return 1;
  }
}

if (require.main === module) {
  void run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
