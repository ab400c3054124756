#!/usr/bin/env node
// kata-storage command line: a window onto the library for operators and new users. Arguments go
// through Node's util.parseArgs (strict: an unknown option or a missing value is an error naming
// it). The library, and with it the native addon, is loaded only by the command that needs it, so
// help and --version work even where the addon cannot load.
import { readFileSync, rmdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { booleanOption, columns, stringOption, type OptionSpec } from './cli-common';
// The planner is pure TypeScript (no addon), so its options and code load with the CLI.
import { PLAN_OPTIONS, plan, type PlanArgs } from './runtime/cli-plan';

export interface Io {
  out(line: string): void;
  err(line: string): void;
}

const consoleIo: Io = { out: (l) => console.log(l), err: (l) => console.error(l) };

type Values = Record<string, string | boolean | undefined>;

interface Command {
  /** Positional arguments as shown in usage, e.g. '<storages.json>'. */
  args: string;
  /** One line for the program's help. */
  summary: string;
  /** More for the command's own help. */
  details?: string;
  /** Smallest and largest number of positionals (Infinity: any). */
  positionals: [min: number, max: number];
  options: Record<string, OptionSpec>;
  run(positionals: string[], values: Values, io: Io): Promise<number>;
}

/** A failure of the command line itself (exit 2): the user typed something we do not take. */
class UsageError extends Error {}

const help: OptionSpec = { type: 'boolean', short: 'h', help: 'show this help' };

const sandboxOptions = {
  root: stringOption('DIR', 'the allowed root mount points must lie beneath (default /run/kata-containers)'),
  container: stringOption('ID', 'the container the storages belong to'),
  sysfs: stringOption('DIR', 'where sysfs is mounted (default /sys)'),
  dev: stringOption('DIR', 'where device nodes appear (default /dev)'),
};

// Lazy loaders: each pulls in the library (and the addon) only when a command runs.
/* eslint-disable @typescript-eslint/no-require-imports */
const lib = (): typeof import('./index') => require('./index') as typeof import('./index');
const demo = (): typeof import('./demo') => require('./demo') as typeof import('./demo');
/* eslint-enable @typescript-eslint/no-require-imports */

function readStorages(file: string): unknown[] {
  const text = readFileSync(file, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const storages = Array.isArray(parsed) ? parsed : (parsed as { storages?: unknown } | null)?.storages;
  if (!Array.isArray(storages)) throw new Error(`${file}: expected an array of storages or { "storages": [...] }`);
  return storages;
}

const ms = (t0: number): string => `${(performance.now() - t0).toFixed(2)} ms`;

const commands: Record<string, Command> = {
  demo: {
    args: '',
    summary: 'a walk-through: a sandbox, two containers, a shared emptyDir and disk (root)',
    details:
      "A sandbox, two containers sharing an emptyDir and a loop-device disk: each step's mounts,\n" +
      'reference counts and timings, and nothing left behind (npm run demo runs it in a private\nmount namespace).',
    positionals: [0, 0],
    options: {},
    async run(_p, _v, io) {
      await demo().runDemo((l) => io.out(l));
      return 0;
    },
  },
  apply: {
    args: '<storages.json>',
    summary: 'add the storages of a JSON file to a sandbox, show them, release them (root)',
    details:
      'Adds the Storage list (our form or Kata\'s protobuf JSON: an array, or { "storages": [...] })\n' +
      'to a sandbox, shows the table, then releases it unless --keep.',
    positionals: [1, 1],
    options: {
      ...sandboxOptions,
      keep: booleanOption('leave the storages in place (undo with kata-storage release)'),
    },
    async run([file], v, io) {
      const storages = readStorages(file!);
      const { Sandbox } = lib();
      const root = (v.root as string | undefined) ?? '/run/kata-containers';
      const sb = new Sandbox({
        allowedRoots: [root],
        sysfsRoot: (v.sysfs as string | undefined) ?? '/sys',
        devRoot: (v.dev as string | undefined) ?? '/dev',
      });
      const containerId = v.container as string | undefined;
      const t0 = performance.now();
      const held = await sb.addStorages(
        storages as Parameters<typeof sb.addStorages>[0],
        containerId === undefined ? {} : { containerId },
      );
      io.out(`added ${held.length} storage(s) in ${ms(t0)}`);
      for (const line of demo().storageTable(sb, root)) io.out(`  ${line}`);
      if (v.keep === true) {
        io.out(`kept; undo with: kata-storage release ${file} --root ${root}`);
        return 0;
      }
      const t1 = performance.now();
      await sb.destroy();
      io.out(`released in ${ms(t1)}`);
      return 0;
    },
  },
  release: {
    args: '<storages.json>',
    summary: 'undo `apply --keep` of the same JSON file (root)',
    details:
      "Unmounts each storage's mount point (last first) and removes the directories left empty,\n" +
      'up to the root. Directories with content stay.',
    positionals: [1, 1],
    options: { root: sandboxOptions.root },
    async run([file], v, io) {
      const { normalizeStorage, isMountPoint, umount } = lib();
      const root = (v.root as string | undefined) ?? '/run/kata-containers';
      const storages = readStorages(file!).map((s) => normalizeStorage(s));
      for (const s of storages) {
        if (s.mountPoint !== root && !s.mountPoint.startsWith(`${root}/`)) {
          throw new UsageError(`${s.mountPoint} is outside --root ${root}`);
        }
      }
      let failed = 0;
      for (const s of [...storages].reverse()) {
        try {
          if (isMountPoint(s.mountPoint)) {
            await umount(s.mountPoint);
            io.out(`unmounted ${s.mountPoint}`);
          } else if (s.driver !== 'local') {
            io.out(`not mounted: ${s.mountPoint}`);
          }
          for (let d = s.mountPoint; d !== root && d.startsWith(`${root}/`); d = dirname(d)) {
            const r = removeEmptyDir(d);
            if (r === 'removed') io.out(`removed ${d}`);
            if (r === 'not empty' && d === s.mountPoint) io.out(`kept ${d} (not empty)`);
            if (r !== 'removed') break;
          }
        } catch (e) {
          failed++;
          io.err(`kata-storage release: ${describe(e)}`);
        }
      }
      return failed === 0 ? 0 : 1;
    },
  },
  'parse-options': {
    args: '<option>...',
    summary: 'show how mount option words are parsed (flags, propagation, data)',
    positionals: [0, Infinity],
    options: {},
    async run(words, _v, io) {
      const { parseMountOptions, MountFlags } = lib();
      const names = (bits: number): string => {
        const set = Object.entries(MountFlags)
          .filter(([, f]) => f !== 0 && (bits & f) === f)
          .map(([k]) => k);
        return set.length > 0 ? set.join('|') : '0';
      };
      const p = parseMountOptions(words);
      io.out(JSON.stringify({ ...p, flagNames: names(p.flags), propagationNames: names(p.propagation) }));
      return 0;
    },
  },
  'resolve-pci': {
    args: '<pci-path>',
    summary: 'the block device of the virtio-blk disk at a PCI path (e.g. 02/03), waiting for hot-plug',
    positionals: [1, 1],
    options: {
      sysfs: sandboxOptions.sysfs,
      dev: sandboxOptions.dev,
      timeout: stringOption('MS', 'how long to wait for the device (default 3000)'),
    },
    async run([pciPath], v, io) {
      const timeout = v.timeout as string | undefined;
      if (timeout !== undefined && !/^\d{1,10}$/.test(timeout))
        throw new UsageError(`--timeout must be a number of milliseconds, got '${timeout}'`);
      const dev = await lib().findPciBlockDevice(pciPath!, {
        sysfsRoot: (v.sysfs as string | undefined) ?? '/sys',
        devRoot: (v.dev as string | undefined) ?? '/dev',
        timeoutMs: timeout === undefined ? 3000 : Number(timeout),
      });
      io.out(dev);
      return 0;
    },
  },
  plan: {
    args: '<config.json>',
    summary: "plan a container from an OCI spec as Kata's runtime would (no addon, no mounts)",
    details:
      "Plans a container from its OCI spec (config.json) as Kata's runtime would: the sandbox's and\n" +
      "the container's storages, the rewritten mounts and the host actions (kata-storage/runtime).",
    positionals: [1, 1],
    options: PLAN_OPTIONS,
    async run(positionals, values, io) {
      io.out(plan({ positionals, values: values as PlanArgs['values'] }));
      return 0;
    },
  },
};

/** rmdir, never recursive: a directory with content stays. */
function removeEmptyDir(dir: string): 'removed' | 'not empty' | 'gone' {
  try {
    rmdirSync(dir);
    return 'removed';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return 'not empty';
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'gone';
    throw e;
  }
}

function version(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function optionLines(options: Record<string, OptionSpec>): string[] {
  const rows = Object.entries({ ...options, help }).map(([name, o]) => [
    `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`,
    o.help,
  ]);
  return columns(rows, { indent: '  ' });
}

function commandHelp(name: string): string {
  const c = commands[name]!;
  const opts = Object.keys(c.options).length > 0 ? ' [options]' : '';
  return [
    `usage: kata-storage ${name}${c.args ? ` ${c.args}` : ''}${opts}`,
    '',
    c.details ?? c.summary,
    '',
    'options:',
    ...optionLines(c.options),
  ].join('\n');
}

function programHelp(): string {
  return [
    'usage: kata-storage <command> [options]',
    '',
    'commands:',
    ...columns(
      [
        ...Object.entries(commands).map(([n, c]) => [n, c.summary]),
        ['help', 'help for a command (or: kata-storage <command> --help)'],
      ],
      { indent: '  ' },
    ),
    '',
    'options:',
    '  -h, --help     show this help',
    '  -V, --version  print the version',
  ].join('\n');
}

/** The message an error gets on the command line: its code once, then what it says. */
function describe(e: unknown): string {
  const err = e as Error & { code?: unknown };
  const message = err instanceof Error ? err.message : String(e);
  const code = typeof err?.code === 'string' ? err.code : undefined;
  return code === undefined || message.startsWith(`${code}:`) ? message : `${code}: ${message}`;
}

function usageError(prog: string, message: string, io: Io): number {
  io.err(`${prog}: ${message}`);
  io.err(`Run '${prog} --help' for usage.`);
  return 2;
}

/** Runs one command line; returns the exit status (0 ok, 1 the operation failed, 2 bad usage). */
export async function main(argv: string[], io: Io = consoleIo): Promise<number> {
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
    const topic = rest[0];
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
  const [min, max] = cmd.positionals;
  const n = parsed.positionals.length;
  if (n < min) return usageError(prog, `missing ${cmd.args.split(' ')[n] ?? 'argument'}`, io);
  if (n > max) return usageError(prog, `unexpected argument '${parsed.positionals[max]}'`, io);
  try {
    return await cmd.run(parsed.positionals, parsed.values, io);
  } catch (e) {
    if (e instanceof UsageError) return usageError(prog, e.message, io);
    io.err(`${prog}: ${describe(e)}`);
    return 1;
  }
}

/** main() for a process: never throws, resolves with the exit status. */
export async function run(argv: string[], io: Io = consoleIo): Promise<number> {
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
