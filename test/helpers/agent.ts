// The killed agent of the journal's recovery tests: a child process (test/fixtures/journal-crash.js)
// running a script of Sandbox calls with a journal, killed by SIGKILL at a crash point
// (KATA_STORAGE_FAULT_KILL_AT, native/core/fault.h); a root holding someone else's things; and the
// check of what a new Sandbox recovers from the journal against /proc/self/mountinfo and the tree.
// The agents run the compiled package (dist/): started through the tests' TypeScript loader,
// each would take seconds; ensureBuilt() rebuilds it when lib/ is newer.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, mountSync, umountSync, type RecoveryReport, type Storage } from '../../lib/index';
import { ensureBuilt } from './build';
import { cannotMount, mountAt, mountsUnder, readMountinfo, scratchDir } from './mountinfo';
import { treeSnapshot } from './tree';

if (!cannotMount) ensureBuilt();

/** One call of a killed agent's script (test/fixtures/journal-crash.js). */
export type CrashOp =
  | { op: 'add'; containerId: string; storages: Storage[] }
  | { op: 'remove'; containerId: string }
  | { op: 'set'; path: string }
  | { op: 'unset'; path: string }
  | { op: 'unsetAndRemove'; path: string }
  | { op: 'hold'; path: string }
  | { op: 'let-go' };

export interface CrashScript {
  statePath: string;
  allowedRoots: string[];
  ops: CrashOp[];
}

const CHILD = join(__dirname, '..', 'fixtures', 'journal-crash.js');

/** Runs the script in a child agent; with `killAt`, SIGKILL at that crash point. */
export function runAgent(script: CrashScript, killAt?: number): { killed: boolean; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.KATA_STORAGE_FAULT_KILL_AT;
  if (killAt !== undefined) env.KATA_STORAGE_FAULT_KILL_AT = String(killAt);
  const r = spawnSync(process.execPath, [CHILD, JSON.stringify(script)], {
    env,
    encoding: 'utf8',
    timeout: 60000,
  });
  if (r.signal !== 'SIGKILL' && r.status !== 0) throw new Error(`agent failed (${r.status} ${r.signal}): ${r.stderr}`);
  return { killed: r.signal === 'SIGKILL', stderr: r.stderr };
}

export interface World {
  dir: string;
  root: string;
  statePath: string;
  source: string;
  theirs: string;
  theirsId: number;
  tree: string;
}

/**
 * A root holding someone else's things (a tmpfs with a file, a directory with a file) that no
 * recovery may touch, a watchable-bind source, and the journal's path.
 */
export function world(t: { teardown(fn: () => void): void; fail(msg: string): void }): World {
  const dir = scratchDir(t, 'kata-recovery-');
  const root = join(dir, 'root');
  const theirs = join(root, 'theirs');
  mkdirSync(theirs, { recursive: true });
  mkdirSync(join(root, 'theirs-dir'));
  writeFileSync(join(root, 'theirs-dir', 'f'), 'theirs');
  mountSync('tmpfs', theirs, 'tmpfs', ['size=64k']);
  writeFileSync(join(theirs, 'data'), 'theirs');
  t.teardown(() => umountSync(theirs));
  const source = join(dir, 'src');
  mkdirSync(source);
  writeFileSync(join(source, 'config'), 'v1');
  return {
    dir,
    root,
    statePath: join(dir, 'journal'),
    source,
    theirs,
    theirsId: mountAt(theirs)!.id,
    tree: treeSnapshot(root),
  };
}

export const eph = (mountPoint: string, extra: Partial<Storage> = {}): Storage => ({
  driver: 'ephemeral',
  source: 'tmpfs',
  fstype: 'tmpfs',
  options: ['size=1m'],
  mountPoint,
  ...extra,
});

export const watched = (w: World, mountPoint: string): Storage => ({
  driver: 'watchable-bind',
  source: w.source,
  fstype: 'bind',
  options: ['bind'],
  mountPoint,
});

/** Every storage an op list adds, once per mount point. */
function storagesOf(ops: readonly CrashOp[]): Storage[] {
  const seen = new Map<string, Storage>();
  for (const op of ops) if (op.op === 'add') for (const s of op.storages) seen.set(s.mountPoint, s);
  return [...seen.values()];
}

/**
 * After a recovery: the table against mountinfo (each mounting entry has exactly its one mount,
 * every mount under the root is an entry's or someone else's), someone else's things untouched,
 * the retry of every storage succeeding with one mount each, and destroy() leaving the root as it
 * was. Returns a description of the first mismatch, or undefined.
 */
async function check(w: World, sandbox: Sandbox, report: RecoveryReport, ops: readonly CrashOp[]): Promise<string[]> {
  const problems: string[] = [];
  if (report.errors.length > 0) problems.push(`recovery errors: ${report.errors.map((e) => e.message).join('; ')}`);
  const table = sandbox.storages();
  const ours = mountsUnder(w.root).filter((m) => m.mountPoint !== w.theirs);
  for (const m of ours) if (!table.has(m.mountPoint)) problems.push(`mounted but not in the table: ${m.mountPoint}`);
  for (const [p, info] of table) {
    const here = ours.filter((m) => m.mountPoint === p).length;
    // A setSandboxStorage reference holds no mount of its own.
    if (info.driver === '' ? here > 1 : here !== 1) problems.push(`${p} (${info.driver}) has ${here} mounts`);
  }
  if (mountAt(w.theirs)?.id !== w.theirsId) problems.push("someone else's mount was touched");
  if (readFileSync(join(w.theirs, 'data'), 'utf8') !== 'theirs') problems.push("someone else's data changed");
  // The runtime retries: every storage, for a container of its own.
  try {
    await sandbox.addStorages(storagesOf(ops), { containerId: 'retry' });
    for (const s of storagesOf(ops)) {
      const n = readMountinfo().filter((m) => m.mountPoint === s.mountPoint).length;
      if (n !== 1) problems.push(`after the retry ${s.mountPoint} has ${n} mounts`);
    }
  } catch (err) {
    problems.push(`the retry failed: ${(err as Error).message}`);
  }
  try {
    await sandbox.destroy();
  } catch (err) {
    problems.push(`destroy failed: ${(err as Error).message}`);
  }
  const left = mountsUnder(w.root).filter((m) => m.mountPoint !== w.theirs);
  if (left.length > 0) problems.push(`left mounted: ${left.map((m) => m.mountPoint).join(', ')}`);
  const tree = treeSnapshot(w.root);
  if (tree !== w.tree) problems.push(`tree differs:\n${tree}\nexpected:\n${w.tree}`);
  return problems;
}

export async function recoverAndCheck(
  w: World,
  ops: readonly CrashOp[],
): Promise<{ report: RecoveryReport; problems: string[] }> {
  const sandbox = new Sandbox({ statePath: w.statePath, allowedRoots: [w.root], watchIntervalMs: 50 });
  const report = await sandbox.recovery;
  const problems = await check(w, sandbox, report, ops);
  rmSync(w.statePath, { force: true });
  return { report, problems };
}
