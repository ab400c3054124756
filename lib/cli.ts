#!/usr/bin/env node
// kata-storage command line: a window onto the library for operators and new users.
import { readFileSync } from 'node:fs';
import { runDemo, storageTable } from './demo';
import { findPciBlockDevice } from './devices';
import { MountFlags, parseMountOptions } from './index';
import { Sandbox } from './sandbox';
import { PLAN_OPTIONS, PLAN_USAGE, plan } from './runtime/cli-plan';
import { parseArgs as parseCommandArgs } from 'node:util';

const usage = `usage: kata-storage <command>
  demo                      a sandbox, two containers sharing an emptyDir and a loop-device disk,
                            each step's mounts, reference counts and timings (root)
  apply <storages.json> [--root DIR] [--container ID] [--sysfs DIR] [--dev DIR] [--keep]
                            add the Storage list (our form or Kata's protobuf JSON: an array, or
                            { "storages": [...] }) to a sandbox, show the table, then release it
                            unless --keep (root)
  parse-options <opt>...    show how mount option words are parsed
  resolve-pci <pci-path> [--sysfs DIR] [--dev DIR] [--timeout MS]
                            the block device of a virtio-blk disk at a PCI path (e.g. 02/03)
${PLAN_USAGE}`;

export interface Io {
  out(line: string): void;
  err(line: string): void;
}

const consoleIo: Io = { out: (l) => console.log(l), err: (l) => console.error(l) };

function flagNames(bits: number): string {
  const names = Object.entries(MountFlags)
    .filter(([, v]) => v !== 0 && (bits & v) === v)
    .map(([k]) => k);
  return names.length > 0 ? names.join('|') : '0';
}

/** Splits `--name value` and `--flag` out of the arguments. */
function parseArgs(args: string[], valued: string[]): { positional: string[]; opts: Map<string, string> } {
  const positional: string[] = [];
  const opts = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const name = a.slice(2);
    if (valued.includes(name)) {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      opts.set(name, v);
    } else {
      opts.set(name, 'true');
    }
  }
  return { positional, opts };
}

async function apply(args: string[], io: Io): Promise<number> {
  const { positional, opts } = parseArgs(args, ['root', 'container', 'sysfs', 'dev']);
  const file = positional[0];
  if (file === undefined) {
    io.err(usage);
    return 2;
  }
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
  const storages = Array.isArray(parsed) ? parsed : (parsed as { storages?: unknown[] }).storages;
  if (!Array.isArray(storages)) throw new Error(`${file}: expected an array of storages or { "storages": [...] }`);
  const root = opts.get('root') ?? '/run/kata-containers';
  const sb = new Sandbox({ allowedRoots: [root], sysfsRoot: opts.get('sysfs') ?? '/sys', devRoot: opts.get('dev') ?? '/dev' });
  const containerId = opts.get('container');
  const start = performance.now();
  const held = await sb.addStorages(storages, containerId === undefined ? {} : { containerId });
  io.out(`added ${held.length} storage(s) in ${(performance.now() - start).toFixed(2)} ms`);
  for (const line of storageTable(sb, root)) io.out(`  ${line}`);
  if (opts.has('keep')) return 0;
  const t1 = performance.now();
  await sb.destroy();
  io.out(`released in ${(performance.now() - t1).toFixed(2)} ms`);
  return 0;
}

async function resolvePci(args: string[], io: Io): Promise<number> {
  const { positional, opts } = parseArgs(args, ['sysfs', 'dev', 'timeout']);
  if (positional[0] === undefined) {
    io.err(usage);
    return 2;
  }
  const dev = await findPciBlockDevice(positional[0], {
    sysfsRoot: opts.get('sysfs') ?? '/sys',
    devRoot: opts.get('dev') ?? '/dev',
    timeoutMs: Number(opts.get('timeout') ?? 3000),
  });
  io.out(dev);
  return 0;
}

export async function main(argv: string[], io: Io = consoleIo): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'demo':
      await runDemo((l) => io.out(l));
      return 0;
    case 'apply':
      return apply(rest, io);
    case 'resolve-pci':
      return resolvePci(rest, io);
    case 'plan':
      io.out(plan(parseCommandArgs({ args: rest, options: PLAN_OPTIONS, allowPositionals: true })));
      return 0;
    case 'parse-options': {
      const p = parseMountOptions(rest);
      io.out(JSON.stringify({ ...p, flagNames: flagNames(p.flags), propagationNames: flagNames(p.propagation) }));
      return 0;
    }
    default:
      io.err(usage);
      return cmd === undefined || cmd === 'help' || cmd === '--help' ? 0 : 2;
  }
}

/** main() with failures reported the way a command line does: one line, exit status 1. */
export async function run(argv: string[], io: Io = consoleIo): Promise<number> {
  try {
    return await main(argv, io);
  } catch (e) {
    const err = e as Error & { code?: string };
    io.err(`kata-storage: ${err.code ? `${err.code}: ` : ''}${err.message}`);
    return 1;
  }
}

if (require.main === module) {
  void run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
