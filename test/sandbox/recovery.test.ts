// Surviving an agent restart: a process running Sandbox calls with a journal is killed (SIGKILL,
// at each crash point the addon and the journal pass, native/core/fault.h) at every step of a
// request and of a release, then a new Sandbox on the same journal recovers. Each time, checked
// against /proc/self/mountinfo and the directory tree: the table matches the kernel, nothing of
// someone else's was touched, the runtime's retry of the request behaves as if there had been no
// crash, and destroy() leaves nothing behind.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statfsSync,
  appendFileSync,
  writeFileSync,
  existsSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import * as fc from 'fast-check';
import { Sandbox, mountSync, umountSync, type RecoveryReport, type Storage } from '../../lib/index';
import { storageChannels } from '../../lib/index';
import { cannotMount, mountAt, mountsUnder, readMountinfo, scratchDir } from '../helpers/mountinfo';
import { treeSnapshot } from '../helpers/tree';
import { ensureBuilt } from '../helpers/build';

/** One call of a killed agent's script (test/fixtures/journal-crash.js). */
type CrashOp =
  | { op: 'add'; containerId: string; storages: Storage[] }
  | { op: 'remove'; containerId: string }
  | { op: 'set'; path: string }
  | { op: 'unset'; path: string }
  | { op: 'unsetAndRemove'; path: string };

interface CrashScript {
  statePath: string;
  allowedRoots: string[];
  ops: CrashOp[];
}

const CHILD = join(__dirname, '..', 'fixtures', 'journal-crash.js');
// The agents run the compiled package: started through the test's TypeScript loader, each would
// take seconds.
if (!cannotMount) ensureBuilt();

/** Runs the script in a child agent; with `killAt`, SIGKILL at that crash point. */
function runAgent(script: CrashScript, killAt?: number): { killed: boolean; stderr: string } {
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

interface World {
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
function world(t: { teardown(fn: () => void): void; fail(msg: string): void }): World {
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

const eph = (mountPoint: string, extra: Partial<Storage> = {}): Storage => ({
  driver: 'ephemeral',
  source: 'tmpfs',
  fstype: 'tmpfs',
  options: ['size=1m'],
  mountPoint,
  ...extra,
});

const watched = (w: World, mountPoint: string): Storage => ({
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

async function recoverAndCheck(
  w: World,
  ops: readonly CrashOp[],
): Promise<{ report: RecoveryReport; problems: string[] }> {
  const sandbox = new Sandbox({ statePath: w.statePath, allowedRoots: [w.root], watchIntervalMs: 50 });
  const report = await sandbox.recovery;
  const problems = await check(w, sandbox, report, ops);
  rmSync(w.statePath, { force: true });
  return { report, problems };
}

t.test('a kill at every crash point of requests and releases recovers', { skip: cannotMount }, async (t) => {
  const w = world(t);
  const r = (p: string): string => join(w.root, p);
  const ops: CrashOp[] = [
    { op: 'add', containerId: 'c1', storages: [eph(r('c1/e1')), watched(w, r('c1/w1'))] },
    { op: 'add', containerId: 'c2', storages: [eph(r('pod/s1'), { shared: true }), eph(r('c1/e1'))] },
    { op: 'set', path: r('c1/e1') },
    { op: 'remove', containerId: 'c1' },
    { op: 'unset', path: r('c1/e1') },
    { op: 'remove', containerId: 'c2' },
    { op: 'unsetAndRemove', path: r('pod/s1') },
  ];
  const script: CrashScript = { statePath: w.statePath, allowedRoots: [w.root], ops };
  const seen = { adopted: 0, rolledBack: 0, dropped: 0 };
  let points = 0;
  for (let k = 1; k < 500; k++) {
    const { killed } = runAgent(script, k);
    const { report, problems } = await recoverAndCheck(w, ops);
    t.same(problems, [], `killed at crash point ${k}`);
    if (problems.length > 0) break;
    if (report.adopted.length > 0) seen.adopted++;
    if (report.rolledBack.length > 0) seen.rolledBack++;
    if (report.dropped.length > 0) seen.dropped++;
    if (!killed) {
      points = k - 1;
      break;
    }
  }
  t.ok(points > 20, `the script passed ${points} crash points, each one a kill and a recovery`);
  t.ok(
    seen.adopted > 0 && seen.rolledBack > 0,
    `recoveries adopted (${seen.adopted}) and rolled back (${seen.rolledBack})`,
  );
  t.comment(
    `crash points: ${points}; recoveries that adopted ${seen.adopted}, rolled back ${seen.rolledBack}, dropped ${seen.dropped}`,
  );
});

t.test(
  'a recovery killed at each of its own crash points is recovered by the next',
  { skip: cannotMount },
  async (t) => {
    const w = world(t);
    const r = (p: string): string => join(w.root, p);
    const ops: CrashOp[] = [
      { op: 'add', containerId: 'c1', storages: [eph(r('c1/e1')), eph(r('c1/e2'))] },
      { op: 'add', containerId: 'c2', storages: [eph(r('c2/e1')), watched(w, r('c2/w1'))] },
      { op: 'remove', containerId: 'c1' },
    ];
    const script: CrashScript = { statePath: w.statePath, allowedRoots: [w.root], ops };
    let recoveriesKilled = 0;
    // Agents killed in the middle of each call, then restarted agents killed in their recovery.
    for (const k of [4, 9, 14, 19, 24]) {
      runAgent(script, k);
      let j = 1;
      for (; runAgent({ ...script, ops: [] }, j).killed; j++) recoveriesKilled++;
      const { problems } = await recoverAndCheck(w, ops);
      t.same(problems, [], `killed at ${k}, then its recoveries at each of their ${j - 1} crash points`);
    }
    t.ok(recoveriesKilled > 5, `${recoveriesKilled} recoveries were killed half-way`);
  },
);

t.test('random request and release sequences, killed at a random step, recover', { skip: cannotMount }, async (t) => {
  const w = world(t);
  const points = ['a', 'b/c', 'b/d', 'w'];
  const storage = (i: number, shared: boolean): Storage =>
    points[i] === 'w' ? watched(w, join(w.root, 'w')) : eph(join(w.root, points[i]!), shared ? { shared } : {});
  const op = fc.oneof(
    fc
      .record({
        c: fc.integer({ min: 1, max: 3 }),
        picks: fc.uniqueArray(fc.integer({ min: 0, max: points.length - 1 }), { minLength: 1, maxLength: 3 }),
        shared: fc.boolean(),
      })
      .map(({ c, picks, shared }): CrashOp => ({
        op: 'add',
        containerId: `c${c}`,
        storages: picks.map((i) => storage(i, shared)),
      })),
    fc.integer({ min: 1, max: 3 }).map((c): CrashOp => ({ op: 'remove', containerId: `c${c}` })),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(op, { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 1, max: 80 }),
      async (ops, killAt) => {
        runAgent({ statePath: w.statePath, allowedRoots: [w.root], ops }, killAt);
        const { problems } = await recoverAndCheck(w, ops);
        if (problems.length > 0) throw new Error(problems.join('\n'));
      },
    ),
    { numRuns: 15 },
  );
  t.pass('every run recovered to a table matching the kernel');
});

t.test(
  'a journal cut at every byte of its last record recovers to the last whole one',
  { skip: cannotMount },
  async (t) => {
    const w = world(t);
    const mp = join(w.root, 'p', 'e');
    const whole = join(w.dir, 'whole');
    const a = new Sandbox({ statePath: whole, allowedRoots: [w.root] });
    await a.recovery;
    await a.addStorages([eph(mp)], { containerId: 'c1' });
    const bytes = readFileSync(whole);
    const last = bytes.lastIndexOf(0x0a, bytes.length - 2) + 1;
    t.match(bytes.toString('utf8', last), / \{"t":"end"/, "the last record is the request's end");
    const mountId = mountAt(mp)!.id;
    // The whole journal: the storage is adopted as it is.
    copyFileSync(whole, w.statePath);
    const b = new Sandbox({ statePath: w.statePath, allowedRoots: [w.root] });
    t.same((await b.recovery).adopted, [mp]);
    t.equal(mountAt(mp)?.id, mountId, 'the very mount kept');
    t.same(b.storages().get(mp)?.refcount, 1);
    let bad = 0;
    for (let cut = last; cut < bytes.length; cut++) {
      writeFileSync(w.statePath, bytes.subarray(0, cut));
      if (mountAt(mp) === undefined) {
        // Put the request's mount back as the killed agent left it (the previous cut rolled it back).
        mkdirSync(mp, { recursive: true });
        mountSync('tmpfs', mp, 'tmpfs', ['size=1m']);
      }
      const before = readFileSync(w.statePath).length;
      const s = new Sandbox({ statePath: w.statePath, allowedRoots: [w.root] });
      const report = await s.recovery;
      const ok =
        report.tornBytes === cut - last &&
        before === cut &&
        report.rolledBack.includes(mp) &&
        report.adopted.length === 0 &&
        mountAt(mp) === undefined &&
        !existsSync(join(w.root, 'p')) &&
        s.storages().size === 0;
      if (!ok) {
        bad++;
        t.fail(`cut at ${cut}: ${JSON.stringify(report)}`);
      }
    }
    t.equal(bad, 0, `each of the ${bytes.length - last} cuts read to the request's begin and rolled it back`);
    t.equal(treeSnapshot(w.root), w.tree, 'the root is as it was');
  },
);

t.test(
  'an adopted watchable-bind keeps following its source; an ephemeral storage can be resized',
  { skip: cannotMount },
  async (t) => {
    const w = world(t);
    const wb = join(w.root, 'cm');
    const em = join(w.root, 'empty');
    runAgent({
      statePath: w.statePath,
      allowedRoots: [w.root],
      ops: [{ op: 'add', containerId: 'c1', storages: [watched(w, wb), eph(em)] }],
    });
    t.equal(readFileSync(join(wb, 'config'), 'utf8'), 'v1');
    // While no agent runs, the source changes: a file changed, one added, one deleted.
    writeFileSync(join(w.source, 'config'), 'v2');
    writeFileSync(join(w.source, 'added'), 'new');
    writeFileSync(join(wb, 'stale'), 'gone in the source');
    const reports: RecoveryReport[] = [];
    const listener = (m: RecoveryReport): void => void reports.push(m);
    storageChannels.recovery.subscribe(listener);
    t.teardown(() => storageChannels.recovery.unsubscribe(listener));
    const s = new Sandbox({ statePath: w.statePath, allowedRoots: [w.root], watchIntervalMs: 20 });
    const report = await s.recovery;
    t.same(report.adopted.sort(), [em, wb].sort());
    t.same(reports, [report], 'published once on kata-storage:recovery');
    // One poll applies changes, then deletions.
    const synced = (): boolean => readFileSync(join(wb, 'config'), 'utf8') === 'v2' && !existsSync(join(wb, 'stale'));
    for (let i = 0; i < 200 && !synced(); i++) await new Promise((r) => setTimeout(r, 10));
    t.equal(readFileSync(join(wb, 'config'), 'utf8'), 'v2', 'a change made while the agent was down arrives');
    t.equal(readFileSync(join(wb, 'added'), 'utf8'), 'new');
    t.notOk(existsSync(join(wb, 'stale')), 'what the source no longer has goes');
    writeFileSync(join(w.source, 'config'), 'v3');
    for (let i = 0; i < 200 && readFileSync(join(wb, 'config'), 'utf8') !== 'v3'; i++)
      await new Promise((r) => setTimeout(r, 10));
    t.equal(readFileSync(join(wb, 'config'), 'utf8'), 'v3', 'and it goes on following');
    const updated = await s.updateEphemeralMounts([eph(em, { options: ['size=4m'] })]);
    t.equal(updated.length, 1);
    t.equal(statfsSync(em).blocks * statfsSync(em).bsize, 4 * 1024 * 1024, 'resized to 4 MiB');
    await s.destroy();
    t.same(
      mountsUnder(w.root).filter((m) => m.mountPoint !== w.theirs),
      [],
    );
  },
);

t.test('without statePath nothing is written; a bad one is refused', async (t) => {
  const dir = scratchDir(t, 'kata-recovery-');
  const s = new Sandbox({ allowedRoots: [dir] });
  t.same(await s.recovery, { journal: false, adopted: [], rolledBack: [], dropped: [], errors: [], tornBytes: 0 });
  t.equal(s.statePath, undefined);
  t.same(readdirSync(dir), []);
  t.throws(() => new Sandbox({ statePath: 'relative/journal' }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => new Sandbox({ statePath: join(dir, 'missing', 'journal') }), {
    code: 'ERR_JOURNAL',
    value: join(dir, 'missing', 'journal'),
  });
  t.same(readdirSync(dir), [], 'a refused journal creates nothing');
});

t.test(
  'a journal that cannot take a record refuses the call before anything is touched',
  { skip: cannotMount },
  async (t) => {
    const w = world(t);
    // A full filesystem under the journal: the begin record cannot be written.
    const small = join(w.dir, 'small');
    mkdirSync(small);
    mountSync('tmpfs', small, 'tmpfs', ['size=16k']);
    t.teardown(() => umountSync(small, { detach: true }));
    const statePath = join(small, 'journal');
    const s = new Sandbox({ statePath, allowedRoots: [w.root] });
    await s.recovery;
    // Records up to just short of a page boundary, so that the next one needs a page the full
    // filesystem cannot give: the kernel writes what fits and stops there (a torn record).
    for (let i = 0; statSync(statePath).size % 4096 < 4096 - 120; i++) {
      if (i % 2 === 0) s.setSandboxStorage(join(w.root, 'ref'));
      else s.unsetSandboxStorage(join(w.root, 'ref'));
    }
    // Fill what is left, to the last byte the filesystem takes.
    const filler = join(small, 'filler');
    writeFileSync(filler, '');
    for (let chunk = 4096; chunk >= 1;) {
      try {
        appendFileSync(filler, Buffer.alloc(chunk));
      } catch {
        chunk = Math.floor(chunk / 2);
      }
    }
    const journalBefore = readFileSync(statePath);
    const before = readMountinfo().length;
    await t.rejects(s.addStorages([eph(join(w.root, 'x'))], { containerId: 'c1' }), { code: 'ERR_JOURNAL' });
    t.equal(readMountinfo().length, before, 'nothing mounted');
    t.equal(treeSnapshot(w.root), w.tree, 'nothing created');
    t.same(
      [...s.storages().keys()],
      s.storages().has(join(w.root, 'ref')) ? [join(w.root, 'ref')] : [],
      'no storage taken',
    );
    t.same(readFileSync(statePath), journalBefore, 'the torn record was cut off again: the journal reads whole');
    rmSync(filler);
    await s.addStorages([eph(join(w.root, 'x'))], { containerId: 'c1' });
    t.ok(mountAt(join(w.root, 'x')), 'once there is room, the call goes through');
    await s.destroy();
  },
);
