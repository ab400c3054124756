// Reading /proc/self/mountinfo: the ground truth every kernel-touching test checks against.
// Parsed here on its own rather than with lib/mountinfo.ts: the oracle the tests check the library
// against shares no code with it (and reads every field, ids and optional fields included).
import { readFileSync, mkdtempSync, mkdirSync, rmSync, readlinkSync } from 'node:fs';
import { mountSync } from '../../lib/index';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

export interface MountEntry {
  id: number;
  parent: number;
  majorMinor: string;
  root: string;
  mountPoint: string;
  mountOptions: string[];
  optionalFields: string[];
  fstype: string;
  source: string;
  superOptions: string[];
}

const unescape = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function readMountinfo(): MountEntry[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [left, right] = line.split(' - ');
      const f = left!.split(' ');
      const r = right!.split(' ');
      return {
        id: Number(f[0]),
        parent: Number(f[1]),
        majorMinor: f[2]!,
        root: unescape(f[3]!),
        mountPoint: unescape(f[4]!),
        mountOptions: f[5]!.split(','),
        optionalFields: f.slice(6),
        fstype: r[0]!,
        source: unescape(r[1]!),
        superOptions: (r[2] ?? '').split(','),
      };
    });
}

/** The topmost mount at `path`, if any. */
export function mountAt(path: string): MountEntry | undefined {
  return readMountinfo()
    .filter((m) => m.mountPoint === path)
    .pop();
}

/** All mounts at or below `dir`. */
export function mountsUnder(dir: string): MountEntry[] {
  return readMountinfo().filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(`${dir}/`));
}

/** A stable text form of the mount table (ids excluded), to compare before and after. */
export function mountSnapshot(): string {
  return readMountinfo()
    .map((m) => `${m.mountPoint} ${m.fstype} ${m.source} ${m.mountOptions.join(',')} ${m.superOptions.join(',')}`)
    .join('\n');
}

// scripts/test.sh records the namespace it started in before entering a new one; /proc/1/ns is
// not readable on every machine, so this is how a test knows it is not in the host's namespace.
function privateNamespace(): boolean {
  const outer = process.env.KATA_STORAGE_OUTER_MNTNS;
  try {
    return outer !== undefined && outer !== '' && readlinkSync('/proc/self/ns/mnt') !== outer;
  } catch {
    return false;
  }
}

/**
 * Why kernel-touching tests cannot run here, or false when they can. They must be root and in a
 * mount namespace of their own (npm test provides one) so nothing can leak onto the host.
 */
export const cannotMount: string | false =
  process.getuid?.() !== 0
    ? 'needs root (mount(2) requires CAP_SYS_ADMIN)'
    : !privateNamespace()
      ? 'not in a private mount namespace: run through `npm test` (unshare -m --propagation private)'
      : false;

/** A fresh directory, removed at teardown after checking nothing is still mounted below it. */
export function scratchDir(
  t: { teardown(fn: () => void): void; fail(msg: string): void },
  prefix = 'kata-storage-',
): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => {
    const left = mountsUnder(dir);
    if (left.length > 0) {
      t.fail(`mounts left behind under ${dir}: ${left.map((m) => m.mountPoint).join(', ')}`);
      // Never delete into a mount: take them down (deepest first) before removing the tree.
      for (const m of left.reverse()) spawnSync('umount', ['-l', m.mountPoint]);
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/**
 * `<dir>/src`: a tmpfs with another tmpfs mounted at `sub`, and an empty `<dir>/dst`, for tests of
 * what rbind and recursive attributes do to a mount below the top. The test unmounts both
 * (sub first) before scratchDir's teardown checks that nothing is left.
 */
export function nestedMounts(dir: string): { src: string; dst: string } {
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  mkdirSync(src);
  mkdirSync(dst);
  mountSync('tmpfs', src, 'tmpfs', ['size=64k']);
  mkdirSync(join(src, 'sub'));
  mountSync('tmpfs', join(src, 'sub'), 'tmpfs', ['size=64k']);
  return { src, dst };
}
