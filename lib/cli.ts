#!/usr/bin/env node
// kata-storage command line: a window onto the library for operators and new users.
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MountFlags, mount, parseMountOptions, umount } from './index';

const usage = `usage: kata-storage <command>
  demo                      mount and unmount a tmpfs, showing mountinfo (root, private namespace)
  parse-options <opt>...    show how mount option words are parsed`;

function flagNames(bits: number): string {
  const names = Object.entries(MountFlags)
    .filter(([, v]) => v !== 0 && (bits & v) === v)
    .map(([k]) => k);
  return names.length > 0 ? names.join('|') : '0';
}

function mountinfoLine(target: string): string {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === target) ?? '(not mounted)';
}

async function demo(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kata-storage-demo-'));
  try {
    const t0 = process.hrtime.bigint();
    await mount('tmpfs', dir, 'tmpfs', ['nodev,nosuid', 'size=1m', 'mode=700']);
    const t1 = process.hrtime.bigint();
    console.log(`mounted   ${dir}  (${Number(t1 - t0) / 1e3} us)\n  ${mountinfoLine(dir)}`);
    await umount(dir);
    const t2 = process.hrtime.bigint();
    console.log(`unmounted ${dir}  (${Number(t2 - t1) / 1e3} us)\n  ${mountinfoLine(dir)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'demo':
      await demo();
      return 0;
    case 'parse-options': {
      const p = parseMountOptions(rest);
      console.log(JSON.stringify({ ...p, flagNames: flagNames(p.flags), propagationNames: flagNames(p.propagation) }));
      return 0;
    }
    default:
      console.error(usage);
      return cmd === undefined || cmd === 'help' || cmd === '--help' ? 0 : 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error & { code?: string }) => {
    console.error(`kata-storage: ${err.code ? `${err.code}: ` : ''}${err.message}`);
    process.exitCode = 1;
  },
);
