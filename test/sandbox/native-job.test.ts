// A request of built-in storages carried out in one native job: what the job does is
// what create() did, storage by storage, and every guarantee of the request path holds when the
// job fails half-way, is refused, or races destroy() and setSandboxStorage(). Proven through
// /proc/self/mountinfo and the tree under the root; the addon is only counted, never faked.
import t from 'tap';
import * as diagnostics_channel from 'node:diagnostics_channel';
import { existsSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Sandbox,
  StorageError,
  defaultRegistry,
  mountSync,
  storageTracing,
  umountSync,
  type Storage,
} from '../../lib/index';
import { applyStorageJobs, native, releaseStorageJobs, type NativeStorageJob } from '../../lib/native';
import { cannotMount, mountAt, mountSnapshot, readMountinfo, scratchDir } from '../helpers/mountinfo';
import { rejection } from '../helpers/rejection';
import { treeSnapshot } from '../helpers/tree';

/** Names of the addon's functions called while `fn` runs (the loaded addon, wrapped to count). */
async function nativeCalls(t: { teardown(fn: () => void): void }, fn: () => Promise<unknown>): Promise<string[]> {
  const calls: string[] = [];
  const target = native as unknown as Record<string, unknown>;
  const saved = Object.entries(target).filter(([, f]) => typeof f === 'function');
  for (const [name, f] of saved) {
    target[name] = function counted(this: unknown, ...args: unknown[]): unknown {
      calls.push(name);
      return (f as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  const restore = (): void => {
    for (const [name, f] of saved) target[name] = f;
  };
  t.teardown(restore);
  try {
    await fn();
  } finally {
    restore();
  }
  return calls;
}

/** Adds `storages` for container 'c', checking they were made by one job and nothing apart from it. */
async function addAsOneJob(
  t: Parameters<typeof nativeCalls>[0] & { same(a: unknown, b: unknown, m: string): void },
  sb: Sandbox,
  storages: Storage[],
): Promise<void> {
  const calls = await nativeCalls(t, () => sb.addStorages(storages, { containerId: 'c' }));
  t.same(
    calls.filter((n) => n === 'applyStorages' || n === 'makeBeneath'),
    ['applyStorages'],
    'one job, no directory made apart from it',
  );
}

/** The mounts under `root`, as lines of path (relative to it), fstype and super options. */
function relativeMounts(root: string): string {
  return mountSnapshot()
    .split('\n')
    .filter((l) => l.includes(root))
    .map((l) => l.split(root).join('<root>'))
    .sort()
    .join('\n');
}

const tmpfs = (mountPoint: string, options: string[] = ['size=1m']) => ({
  driver: 'ephemeral',
  source: 'tmpfs',
  fstype: 'tmpfs',
  options,
  mountPoint,
});

t.test('one native job per request', { skip: cannotMount }, async (t) => {
  t.test('three ephemeral storages: one job to add, one to release, as create() would mount them', async (t) => {
    const root = scratchDir(t);
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const sb = new Sandbox({ allowedRoots: [root] });
    const points = ['a', 'b/c', 'b/d'].map((p) => join(root, p));
    const added = await nativeCalls(t, () =>
      sb.addStorages(
        points.map((p) => tmpfs(p, ['size=2m', 'mode=1777'])),
        { containerId: 'c' },
      ),
    );
    t.same(
      added.filter((n) => n === 'applyStorages'),
      ['applyStorages'],
      'the storages were made by one applyStorages job',
    );
    t.notOk(
      added.some((n) => n === 'mount' || n === 'makeBeneath' || n === 'applyFsGroup'),
      'and by nothing else',
    );
    for (const p of points) {
      t.equal(mountAt(p)?.fstype, 'tmpfs', `${p} is a tmpfs`);
      t.match(mountAt(p)?.superOptions ?? '', /size=2048k/, 'with its size');
      t.equal(statSync(p).mode & 0o7777, 0o1777, 'and its mode');
    }
    t.same([...sb.storages().keys()], points, 'one table entry each');
    const released = await nativeCalls(t, () => sb.removeContainer('c'));
    t.same(released, ['releaseStorages'], 'released by one releaseStorages job');
    t.equal(mountSnapshot(), before, 'nothing left mounted');
    t.equal(treeSnapshot(root), tree, 'nothing left behind: b/ went with b/c and b/d');
  });

  t.test('a mount failing half-way: the job undoes the request itself; nothing changes', async (t) => {
    const root = scratchDir(t);
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const sb = new Sandbox({ allowedRoots: [root] });
    const err = await rejection(
      sb.addStorages([
        tmpfs(join(root, 'x/one')),
        tmpfs(join(root, 'x/two')),
        tmpfs(join(root, 'x/three'), ['size=zz']),
      ]),
    );
    t.ok(err instanceof Error, 'rejected');
    t.equal(err.code, 'EINVAL', "the kernel's answer");
    t.match(err.syscall, /^(mount|fsconfig)$/, 'from the mount (mount(2), or fsconfig on the new API)');
    t.equal(err.dest, join(root, 'x/three'), 'naming the storage that failed');
    t.same(err.rollbackErrors, undefined, 'the undo itself went well');
    t.equal(mountSnapshot(), before, 'mountinfo as before');
    t.equal(treeSnapshot(root), tree, 'the tree as before');
    t.equal(sb.storages().size, 0, 'the table as before');
  });

  t.test(
    'mount points sharing a directory: made from it, and onto a mount an earlier storage put over it',
    async (t) => {
      const root = scratchDir(t);
      const before = mountSnapshot();
      const tree = treeSnapshot(root);
      const sb = new Sandbox({ allowedRoots: [root] });
      // d/q and d/r share d; d itself is mounted between them, so r must land on d's new tmpfs.
      const points = ['d/q', 'd', 'd/r', 'e/s', 'e/t'].map((p) => join(root, p));
      await sb.addStorages(points.map((p) => tmpfs(p)));
      const [q, d, r, s, u] = points.map((p) => mountAt(p));
      t.equal(q?.parent, mountAt(root)?.id ?? q?.parent, 'd/q on the root filesystem');
      t.equal(r?.parent, d?.id, 'd/r on the tmpfs mounted on d, not hidden beneath it');
      t.equal(s?.parent, u?.parent, 'e/s and e/t side by side');
      await sb.destroy();
      t.equal(mountSnapshot(), before, 'all released');
      t.equal(treeSnapshot(root), tree, 'and the tree as before');
    },
  );

  t.test(
    'mount points under directories that exist: made from where the check got, unless a mount of the request covers them',
    async (t) => {
      const root = scratchDir(t);
      mkdirSync(join(root, 'p/d'), { recursive: true });
      mkdirSync(join(root, 'k/d'), { recursive: true });
      writeFileSync(join(root, 'p/d/under'), 'hidden below the mount');
      const before = mountSnapshot();
      const tree = treeSnapshot(root);
      const sb = new Sandbox({ allowedRoots: [root] });
      // The check walks to p/d and k/d before anything is mounted. p/d/r's walk then ends under the
      // tmpfs put on p/d, and k/d/s's under the one put on k (above it): both must cross into them.
      const points = ['p/d/q', 'p/d', 'p/d/r', 'k', 'k/d/s', 'p/x/y'].map((p) => join(root, p));
      await sb.addStorages(points.map((p) => tmpfs(p)));
      const [q, d, r, k, s, y] = points.map((p) => mountAt(p));
      // Parents first: p/d is mounted before p/d/q and p/d/r, k before k/d/s.
      t.equal(q?.parent, d?.id, 'p/d/q on the tmpfs mounted on p/d, not in the directory beneath it');
      t.equal(r?.parent, d?.id, 'p/d/r likewise');
      t.equal(s?.parent, k?.id, 'k/d/s on the tmpfs mounted on k, above the directory the check reached');
      t.ok(y !== undefined && y.parent === d?.parent && y.parent === k?.parent, 'p/x/y beside them, in p');
      t.ok(statSync(join(root, 'p/x')).isDirectory(), 'p/x created on the way');
      await sb.destroy();
      t.equal(mountSnapshot(), before, 'all released');
      t.equal(treeSnapshot(root), tree, 'and the tree as before: p/d/under kept, what was made removed');
    },
  );

  t.test('a symlink on the way of a later storage refuses the request before anything is made', async (t) => {
    const root = scratchDir(t);
    mkdirSync(join(root, 'real'));
    symlinkSync(join(root, 'real'), join(root, 'link'));
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const sb = new Sandbox({ allowedRoots: [root] });
    const err = await rejection(sb.addStorages([tmpfs(join(root, 'first')), tmpfs(join(root, 'link', 'second'))]));
    t.ok(err instanceof StorageError, 'a StorageError');
    t.equal(err.code, 'ERR_INVALID_STORAGE');
    t.match(err.message, /reached through a symlink at .*link/, 'naming the symlink');
    t.equal(err.path, join(root, 'link'));
    t.equal(mountSnapshot(), before, 'mountinfo as before');
    t.equal(treeSnapshot(root), tree, 'first/ was never created');
  });

  t.test(
    'tracing observes and never steers: the same requests take the same path with and without subscribers',
    async (t) => {
      // The same script twice: a new request, a reference-only add of a held mount point next to a
      // new one, a failing request (rolled back by the job), then the releases; once with nobody
      // listening, once with every channel of the request path subscribed.
      const run = async (root: string) => {
        const sb = new Sandbox({ allowedRoots: [root] });
        const p = join(root, 'p');
        const q = join(root, 'q');
        const mounts: string[] = [];
        const calls = await nativeCalls(t, async () => {
          await sb.addStorages([tmpfs(p)], { containerId: 'a' });
          await sb.addStorages([tmpfs(p), tmpfs(q)], { containerId: 'b' });
          mounts.push(relativeMounts(root));
          await rejection(
            sb.addStorages([tmpfs(join(root, 'r')), tmpfs(join(root, 's'), ['size=zz'])], { containerId: 'c' }),
          );
          mounts.push(relativeMounts(root));
          await sb.removeContainer('a');
          mounts.push(relativeMounts(root));
          await sb.removeContainer('b');
        });
        return { calls, mounts, table: [...sb.storages()] };
      };
      const quiet = await run(scratchDir(t));
      const events: string[] = [];
      const on = (name: string) => (m: unknown) =>
        void events.push(`${name} ${JSON.stringify(m, ['mountPoint', 'reason'])}`);
      const plain = ['kata-storage:mount', 'kata-storage:umount'].map((n) => [n, on(n)] as const);
      for (const [n, f] of plain) diagnostics_channel.subscribe(n, f);
      const traced = {
        start: on('storage:start'),
        asyncEnd: on('storage:asyncEnd'),
        error: on('storage:error'),
      };
      storageTracing.storage.subscribe(traced);
      storageTracing.addStorages.subscribe(traced);
      t.teardown(() => {
        for (const [n, f] of plain) diagnostics_channel.unsubscribe(n, f);
        storageTracing.storage.unsubscribe(traced);
        storageTracing.addStorages.unsubscribe(traced);
      });
      const observed = await run(scratchDir(t));
      t.same(observed.calls, quiet.calls, 'the same native calls, in the same order');
      t.same(
        quiet.calls.filter((n) => n === 'applyStorages'),
        ['applyStorages', 'applyStorages', 'applyStorages'],
        'one job per request, held mount point or not',
      );
      t.same(observed.mounts, quiet.mounts, 'the same mounts after each step');
      t.same(observed.table, quiet.table, 'the same table');
      t.same(
        quiet.mounts.map((m) => m.split('\n').filter(Boolean).length),
        [2, 2, 2],
        'p and q mounted; the failed request left nothing; p still held by b',
      );
      // What subscribers saw comes from the jobs' records: each storage, each mount, the rollback.
      const count = (prefix: string) => events.filter((e) => e.startsWith(prefix)).length;
      t.equal(
        count('storage:start'),
        1 + 2 + 2 + 3,
        'every storage the requests reached (1, 2, 2), and each request (3)',
      );
      t.equal(count('storage:error'), 2, 'the failed storage and its request');
      t.equal(count('kata-storage:mount'), 1 + 1 + 2, 'each mount the jobs made or tried');
      t.ok(
        events.some((e) => e.startsWith('kata-storage:umount') && e.includes('"rollback"')),
        "the job's own rollback of r is published",
      );
    },
  );

  t.test('destroy() while a pool job runs: the request is given back and refused', async (t) => {
    const root = scratchDir(t);
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const sb = new Sandbox({ allowedRoots: [root] });
    // More storages than run on the calling thread: the job goes to the pool.
    const many = Array.from({ length: native.maxStoragesHere + 1 }, (_, i) => tmpfs(join(root, `d${i}`)));
    const adding = sb.addStorages(many, { containerId: 'c' });
    const destroying = sb.destroy();
    const err = await rejection(adding);
    await destroying;
    t.equal(err.code, 'ERR_SANDBOX_DESTROYED', 'the request is refused');
    t.equal(mountSnapshot(), before, 'nothing it made outlives the sandbox');
    t.equal(treeSnapshot(root), tree, 'nor any directory');
  });

  t.test(
    'destroy() right after a request run on the calling thread: it was made, then destroy() releases it',
    async (t) => {
      const root = scratchDir(t);
      const before = mountSnapshot();
      const tree = treeSnapshot(root);
      const sb = new Sandbox({ allowedRoots: [root] });
      const adding = sb.addStorages([tmpfs(join(root, 'd1')), tmpfs(join(root, 'd2'))], { containerId: 'c' });
      t.equal(mountAt(join(root, 'd2'))?.fstype, 'tmpfs', 'made within the call: memory-only steps run here');
      const destroying = sb.destroy();
      t.same(await adding, [join(root, 'd1'), join(root, 'd2')], 'the request had succeeded');
      await destroying;
      t.equal(mountSnapshot(), before, 'destroy() released it');
      t.equal(treeSnapshot(root), tree, 'and its directories');
    },
  );

  t.test('setSandboxStorage() while a pool job runs: its reference joins the entry the job makes', async (t) => {
    const root = scratchDir(t);
    const before = mountSnapshot();
    const sb = new Sandbox({ allowedRoots: [root] });
    const p = join(root, 'shared');
    const others = Array.from({ length: native.maxStoragesHere }, (_, i) => tmpfs(join(root, `o${i}`)));
    const adding = sb.addStorages([tmpfs(p), ...others], { containerId: 'c' });
    t.equal(sb.setSandboxStorage(p), true, 'a new reference while the job runs');
    await adding;
    t.equal(sb.refcount(p), 2, 'both references counted on one entry');
    await sb.removeContainer('c');
    t.equal(mountAt(p)?.fstype, 'tmpfs', 'still mounted for the other reference');
    t.equal(await sb.unsetAndRemoveSandboxStorage(p), true, 'the last reference removes it');
    t.equal(mountSnapshot(), before, 'and it is unmounted');
  });

  t.test('ephemeral fsgid= and fsGroup in the job; skipped on a read-only tmpfs', async (t) => {
    const root = scratchDir(t);
    const before = mountSnapshot();
    const sb = new Sandbox({ allowedRoots: [root] });
    const rw = join(root, 'rw');
    const ro = join(root, 'ro');
    const calls = await nativeCalls(t, () =>
      sb.addStorages([
        { ...tmpfs(rw, ['size=1m', 'fsgid=4242']), fsGroup: { groupId: 4343 } },
        { ...tmpfs(ro, ['size=1m', 'ro', 'fsgid=4242']) },
      ]),
    );
    t.ok(calls.includes('applyStorages'), 'one job');
    t.equal(statSync(rw).gid, 4242, 'fsgid= is the root group in the end (after fsGroup, as create() does)');
    t.equal(statSync(rw).mode & 0o2000, 0o2000, 'with the setgid bit');
    t.not(statSync(ro).gid, 4242, 'a read-only mount is left as it is');
    await sb.destroy();
    t.equal(mountSnapshot(), before, 'released');
  });
});

// The job crosses as one string of NUL-ended fields and a Float64Array of counts (lib/native.ts):
// a field with a NUL, or counts that do not match the fields, must be refused before the job
// starts, never read as a shifted job that mounts the wrong thing somewhere else.
// Kata's guest pre-mounts the shared filesystem: a virtio-fs storage at that mount point, in a
// request with an emptyDir, is one job that accepts the pre-mount as it is (fsGroup applied, no
// mount event, never unmounted by us) and mounts only the tmpfs; a tmpfs that merely carries the
// tag under another type is not accepted.
t.test("the job accepts the shared filesystem's pre-mount", { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const shared = join(root, 'shared');
  mkdirSync(shared);
  mountSync('kataShared', shared, 'tmpfs', ['size=1m']);
  t.teardown(() => umountSync(shared));
  writeFileSync(join(shared, 'f'), 'x');
  const before = mountSnapshot();
  const events: { mountPoint: string }[] = [];
  const listen = (m: unknown): void => void events.push(m as { mountPoint: string });
  diagnostics_channel.subscribe('kata-storage:mount', listen);
  t.teardown(() => diagnostics_channel.unsubscribe('kata-storage:mount', listen));
  const sb = new Sandbox({ allowedRoots: [root] });
  const shm = join(root, 'c', 'shm');
  await addAsOneJob(t, sb, [
    { driver: 'virtio-fs', source: 'kataShared', fstype: 'tmpfs', mountPoint: shared, fsGroup: { groupId: 4321 } },
    { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: shm },
  ]);
  t.equal(readMountinfo().filter((m) => m.mountPoint === shared).length, 1, 'nothing stacked on the share');
  t.equal(mountAt(shm)?.fstype, 'tmpfs', 'the emptyDir mounted');
  t.equal(statSync(join(shared, 'f')).gid, 4321, 'fsGroup applied to the share');
  t.same(
    events.map((e) => e.mountPoint),
    [shm],
    'one mount event: the tmpfs',
  );
  t.equal(sb.storages().get(shared)?.driver, 'virtio-fs', 'the share is held');
  await sb.removeContainer('c');
  t.equal(mountSnapshot(), before, 'released: the share is still mounted, the tmpfs gone');
  t.notOk(existsSync(join(root, 'c')), 'the directories it made are gone');

  // The tag under another type is not the share asked for: mounted (and failing) as asked.
  const err = await rejection(
    sb.addStorages([{ driver: '9p', source: 'kataShared', fstype: 'nosuchfs', mountPoint: shared }], {
      containerId: 'd',
    }),
  );
  t.equal(err.code, 'ENODEV', err.message);
  t.equal(mountSnapshot(), before, 'nothing mounted');
});

// overlayfs asks for its upperdir and workdir: the job makes them with the mount point (no
// makeDirectory call), and the release takes them away with what the overlay wrote into them.
t.test('an overlay and its directories in the same job', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const lower = scratchDir(t);
  writeFileSync(join(lower, 'base'), 'b');
  const before = mountSnapshot();
  const tree = treeSnapshot(root);
  const sb = new Sandbox({ allowedRoots: [root] });
  const merged = join(root, 'c', 'rootfs');
  await addAsOneJob(t, sb, [
    {
      driver: 'overlayfs',
      source: 'overlay',
      fstype: 'overlay',
      options: [`lowerdir=${lower}`, `upperdir=${join(root, 'c', 'upper')}`, `workdir=${join(root, 'c', 'work')}`],
      mountPoint: merged,
    },
    { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'c', 'shm') },
  ]);
  t.equal(mountAt(merged)?.fstype, 'overlay');
  writeFileSync(join(merged, 'new'), 'n');
  t.ok(existsSync(join(root, 'c', 'upper', 'new')), 'the overlay writes into the upperdir the job made');
  await sb.removeContainer('c');
  t.equal(mountSnapshot(), before, 'released: mountinfo as before');
  t.equal(treeSnapshot(root), tree, 'and the tree, upperdir content and all');
});

// Kata's local storage (a disk-backed emptyDir) is a directory, not a mount: the job makes it with
// its group and mode, as Kata's local handler sets them, alongside the request's mounts.
t.test('a local storage in the same job', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const before = mountSnapshot();
  const tree = treeSnapshot(root);
  const sb = new Sandbox({ allowedRoots: [root] });
  const dir = join(root, 'c', 'cache');
  const events: unknown[] = [];
  const listen = (m: unknown): void => void events.push(m);
  diagnostics_channel.subscribe('kata-storage:mount', listen);
  t.teardown(() => diagnostics_channel.unsubscribe('kata-storage:mount', listen));
  await addAsOneJob(t, sb, [
    { driver: 'local', source: 'local', fstype: 'local', options: ['mode=0750', 'fsgid=4321'], mountPoint: dir },
    { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'c', 'shm') },
  ]);
  const st = statSync(dir);
  t.equal(st.mode & 0o7777, 0o2750, 'mode=0750 with setgid, as fsgid= was given');
  t.equal(st.gid, 4321, 'fsgid= is its group');
  t.equal(mountAt(dir), undefined, 'nothing mounted there');
  t.equal(events.length, 1, 'one mount event: the tmpfs');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'f'), 'x');
  await sb.removeContainer('c');
  t.equal(mountSnapshot(), before, 'released: mountinfo as before');
  t.equal(treeSnapshot(root), tree, 'and the tree: the directory went with its content');

  // Storage by storage (a custom driver in the request): create() runs the same native steps.
  const registry = defaultRegistry().register('plain', {
    async create(storage, ctx) {
      await ctx.makeMountPoint();
      return storage.mountPoint;
    },
  });
  const mixed = new Sandbox({ allowedRoots: [root], registry });
  await mixed.addStorages(
    [
      { driver: 'local', source: 'local', fstype: 'local', options: ['mode=0750', 'fsgid=4321'], mountPoint: dir },
      { driver: 'plain', source: 'x', fstype: 'none', mountPoint: join(root, 'c', 'plain') },
    ],
    { containerId: 'd' },
  );
  t.equal(statSync(dir).mode & 0o7777, 0o2750, 'create(): the same mode');
  t.equal(statSync(dir).gid, 4321, 'create(): the same group');
  t.equal(events.length, 1, 'create(): no mount event for the directory');
  await mixed.removeContainer('d');
  t.equal(treeSnapshot(root), tree, 'create(): released as before');
});

t.test('a malformed job is refused before anything is touched', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const before = mountSnapshot();
  const tree = treeSnapshot(root);
  const job = (source: string): NativeStorageJob => ({
    root,
    rel: 'a',
    leafFile: false,
    source,
    sourceBlock: false,
    acceptPremount: false,
    dirs: [],
    directoryOnly: false,
    mode: -1,
    fstype: 'tmpfs',
    options: [],
    api: 2,
    fsGroup: -1,
    fsGroupReadOnly: false,
    onRootMismatch: false,
    fsgid: -1,
  });
  t.throws(() => applyStorageJobs([job('tmp\0fs')]), { name: 'TypeError', message: /NUL/ }, 'a NUL in a field, in JS');
  const numbers = new Float64Array([0, 2, -1, 0, 0, -1, 0, 0, 0, 0, 0, -1]);
  t.throws(() => native.applyStorages(`${root}\0a\0tmpfs\0`, numbers), /ends before its last field/, 'too few fields');
  t.throws(
    () => native.applyStorages(`${root}\0a\0tmpfs\0tmpfs\0extra\0`, numbers),
    /more fields than its counts say/,
    'too many fields',
  );
  t.throws(() => native.applyStorages('', new Float64Array(11)), /Float64Array of 12 numbers/, 'a partial record');
  const ids = new Float64Array([1, 1]);
  t.throws(() => native.releaseStorages(`${root}/a\0`, new Float64Array([2, 0]), ids, 0), /ends before/, 'release too');
  t.throws(
    () => native.releaseStorages(`${root}/a\0`, new Float64Array([1, 0]), new Float64Array(0), 0),
    /fewer numbers than paths/,
    'a mount without its ID',
  );
  t.throws(
    () => native.releaseStorages(`${root}/a\0`, new Float64Array([1, 0]), ids, 0),
    /more numbers than paths/,
    'an ID too many',
  );
  t.throws(
    () => native.releaseStorages(`${root}/a\0`, new Float64Array([1, 0]), new Float64Array([-1]), 0),
    { name: 'RangeError', message: /mount ID/ },
    'a negative mount ID',
  );
  // Numbers that are not the integers they stand for: NaN, a fraction, out of range.
  const fields = `${root}\0a\0tmpfs\0tmpfs\0`;
  for (const [i, v, what] of [
    [6, NaN, /option count/],
    [6, 0.5, /option count/],
    [1, 3, /mountApi/],
    [2, -2, /fsGroup/],
    [5, 2 ** 32, /fsgid/],
    [9, 65, /directory count/],
    [11, 0o10000, /mode/],
    [7, NaN, /sourceBlock/],
    [0, 2, /leafFile/],
  ] as const) {
    const bad = Float64Array.from(numbers);
    bad[i] = v;
    t.throws(() => native.applyStorages(fields, bad), { name: 'RangeError', message: what }, `${v} at ${i}`);
  }
  t.throws(() => native.applyStorages('', new Float64Array(12)), /more storages than fields/, 'counts without fields');
  t.throws(() => native.releaseStorages(`${root}/a\0`, new Float64Array([NaN, 0]), ids, 0), /path count/, 'NaN count');
  t.throws(
    () => releaseStorageJobs([{ mounts: [{ path: `${root}/a\0b`, id: 1 }], created: [] }], 0),
    /NUL/,
    'a NUL in a release path, in JS',
  );
  t.equal(mountSnapshot(), before, 'nothing mounted');
  t.same(treeSnapshot(root), tree, 'nothing created');
});
