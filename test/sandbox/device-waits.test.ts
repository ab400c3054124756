// A request's device waits run at once: every storage's device is looked for from the request's
// start; a request of built-in drivers is then one job once they are all found, any other is made
// storage by storage in request order, each using its own wait's result. Real hot-plugs: loop
// devices created (losetup, a real uevent) only after their wait started, mmioblk storages
// (virtio-blk over MMIO: the predicted /dev name) waiting for them.
import t from 'tap';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  Sandbox,
  StorageError,
  StorageHandlerRegistry,
  defaultRegistry,
  ueventMonitorState,
  type Storage,
  type WaitEvent,
} from '../../lib/index';
import { listen } from '../helpers/events';
import { attachLoop, loopLater, unusedLoopNumber } from '../helpers/loop';
import { cannotMount, mountAt, mountSnapshot, scratchDir } from '../helpers/mountinfo';
import { rejection } from '../helpers/rejection';
import { treeSnapshot } from '../helpers/tree';

type Teardown = { teardown(fn: () => void): void };

/** The `tracing:kata-storage:wait:*` events in the order they came, each with its source and time. */
function waitTrace(t: Teardown): { kind: string; source: string; at: number; error?: Error }[] {
  const seen: { kind: string; source: string; at: number; error?: Error }[] = [];
  for (const kind of ['start', 'asyncEnd', 'error']) {
    const fn = (m: unknown): void => {
      const c = m as { source: string; error?: Error };
      seen.push({ kind, source: c.source, at: performance.now(), ...(c.error ? { error: c.error } : {}) });
    };
    subscribe(`tracing:kata-storage:wait:${kind}`, fn);
    t.teardown(() => unsubscribe(`tracing:kata-storage:wait:${kind}`, fn));
  }
  return seen;
}

/** Plugs each device `afterMs` after its own wait started (as a hypervisor answering the guest would). */
function plugWhenAwaited(t: Teardown, plugs: Map<string, { afterMs: number; plug: () => void }>): void {
  const fn = (m: unknown): void => {
    const p = plugs.get((m as { source: string }).source);
    if (p === undefined) return;
    plugs.delete((m as { source: string }).source);
    const timer = setTimeout(p.plug, p.afterMs);
    t.teardown(() => clearTimeout(timer));
  };
  subscribe('tracing:kata-storage:wait:start', fn);
  t.teardown(() => unsubscribe('tracing:kata-storage:wait:start', fn));
}

/** The uevent listener's waiters once the cancelled ones are gone (freed on their native thread). */
async function waitersSettled(target: number): Promise<number> {
  for (let i = 0; i < 200 && ueventMonitorState().waiters > target; i++) await new Promise((r) => setTimeout(r, 10));
  return ueventMonitorState().waiters;
}

const mmio = (n: number, mountPoint: string): Storage => ({
  driver: 'mmioblk',
  source: `/dev/loop${n}`,
  fstype: 'ext4',
  mountPoint,
});

t.test('device waits of one request', { skip: cannotMount }, async (t) => {
  t.test('two late disks are waited for at once, then the request is one job', async (t) => {
    const root = scratchDir(t);
    const n1 = unusedLoopNumber();
    const n2 = unusedLoopNumber([n1]);
    const plug1 = loopLater(t, n1);
    const plug2 = loopLater(t, n2);
    const shm = join(root, 'shm');
    const d1 = join(root, 'disks', 'one');
    const d2 = join(root, 'disks', 'two');
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const trace = waitTrace(t);
    const waits = listen<WaitEvent>(t, 'kata-storage:wait');
    // Each disk appears 600 / 700 ms after its own wait starts: waited in turn, the second wait
    // would start once the first disk is mounted and the request would take 1300 ms or more.
    let mountedWhileWaiting: boolean | undefined;
    plugWhenAwaited(
      t,
      new Map([
        [
          `loop${n1}`,
          {
            afterMs: 600,
            plug: () => {
              // Nothing is made while the disks are awaited, not even the tmpfs listed first.
              mountedWhileWaiting = mountAt(shm) !== undefined || mountAt(d1) !== undefined;
              plug1();
            },
          },
        ],
        [`loop${n2}`, { afterMs: 700, plug: plug2 }],
      ]),
    );
    const sb = new Sandbox({ allowedRoots: [root], hotplugTimeoutMs: 10000 });
    const started = performance.now();
    const held = await sb.addStorages(
      [{ driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: shm }, mmio(n1, d1), mmio(n2, d2)],
      { containerId: 'c' },
    );
    const latency = performance.now() - started;
    t.same(held, [shm, d1, d2]);
    t.equal(mountAt(d1)?.source, `/dev/loop${n1}`);
    t.equal(mountAt(d2)?.source, `/dev/loop${n2}`);
    t.equal(
      mountedWhileWaiting,
      false,
      'nothing, not even the tmpfs listed first, was mounted while they were awaited',
    );

    const starts = trace.filter((e) => e.kind === 'start');
    const ends = trace.filter((e) => e.kind === 'asyncEnd');
    t.same(starts.map((e) => e.source).sort(), [`loop${n1}`, `loop${n2}`].sort(), 'one traced wait per disk');
    t.equal(ends.length, 2);
    t.ok(
      Math.max(...starts.map((e) => e.at)) < Math.min(...ends.map((e) => e.at)),
      'both waits started before either ended: they ran at once',
    );
    t.equal(waits.length, 2, 'one kata-storage:wait event per disk');
    t.same(waits.map((w) => w.device).sort(), [`/dev/loop${n1}`, `/dev/loop${n2}`].sort());
    t.notOk(
      waits.some((w) => w.error),
      'no wait failed',
    );
    t.comment(`latency ${latency.toFixed(0)} ms; waits ${waits.map((w) => w.durationMs.toFixed(0)).join(', ')} ms`);
    t.ok(latency >= 650, `the request waited for its longest wait (${latency.toFixed(0)} ms)`);
    t.ok(latency < 1250, `and not for the sum of both (${latency.toFixed(0)} ms, in turn >= 1300)`);

    await sb.removeContainer('c');
    t.equal(mountSnapshot(), before, 'released: mountinfo as before');
    t.equal(treeSnapshot(root), tree, 'and the tree as before');
  });

  t.test('the second disk never comes: the request times out having made nothing', async (t) => {
    const root = scratchDir(t);
    const n1 = unusedLoopNumber();
    const n2 = unusedLoopNumber([n1]);
    const plug1 = loopLater(t, n1);
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const waitersBefore = ueventMonitorState().waiters;
    const waits = listen<WaitEvent>(t, 'kata-storage:wait');
    // Counted per device from its turn, the second wait would end at 800 + 1500 ms or later.
    plugWhenAwaited(t, new Map([[`loop${n1}`, { afterMs: 800, plug: plug1 }]]));
    const sb = new Sandbox({ allowedRoots: [root], hotplugTimeoutMs: 1500 });
    let firstMounted = false;
    const poll = setInterval(() => (firstMounted ||= mountAt(join(root, 'one')) !== undefined), 20);
    t.teardown(() => clearInterval(poll));
    const started = performance.now();
    const err = await rejection(
      sb.addStorages([mmio(n1, join(root, 'one')), mmio(n2, join(root, 'two'))], { containerId: 'c' }),
    );
    const latency = performance.now() - started;
    clearInterval(poll);
    t.equal(err.code, 'ETIMEDOUT', err.message);
    t.match(err.message, `loop${n2}`, 'the error names the missing disk');
    t.equal(firstMounted, false, 'the first disk, found, was never mounted: the job waits for every disk');
    t.ok(
      latency >= 1400 && latency < 2000,
      `failed at the timeout counted from the request's start (${latency.toFixed(0)} ms)`,
    );
    t.equal(mountSnapshot(), before, 'mountinfo as before');
    t.equal(treeSnapshot(root), tree, 'and the tree as before');
    t.equal(sb.storages().size, 0);
    t.equal(await waitersSettled(waitersBefore), waitersBefore, 'no wait left running');
    t.same(
      waits.map((w) => [w.source, w.error === undefined ? 'found' : (w.error as Error & { code?: string }).code]),
      [
        [`/dev/loop${n1}`, 'found'],
        [`/dev/loop${n2}`, 'ETIMEDOUT'],
      ],
    );
  });

  t.test('a wait that fails ends the request at once, the other wait aborted', async (t) => {
    const root = scratchDir(t);
    // A sysfs with the root bus and no bridge: the PCI path '1f/01' fails at once (no bridge at
    // slot 1f), while the mmioblk disk, never plugged, is being waited for.
    const sysfsRoot = scratchDir(t, 'kata-storage-sys-');
    mkdirSync(join(sysfsRoot, 'devices', 'pci0000:00'), { recursive: true });
    const n = unusedLoopNumber();
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const waitersBefore = ueventMonitorState().waiters;
    const trace = waitTrace(t);
    const waits = listen<WaitEvent>(t, 'kata-storage:wait');
    const storageTrace = listen<{ mountPoint: string; error?: Error }>(t, 'tracing:kata-storage:storage:error');
    const sb = new Sandbox({ allowedRoots: [root], hotplugTimeoutMs: 20000, sysfsRoot });
    const started = performance.now();
    const err = await rejection(
      sb.addStorages(
        [
          { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'shm') },
          mmio(n, join(root, 'late')),
          { driver: 'blk', source: '1f/01', fstype: 'ext4', mountPoint: join(root, 'bad') },
        ],
        { containerId: 'c' },
      ),
    );
    const latency = performance.now() - started;
    t.equal(err.code, 'ERR_SYSFS', err.message);
    t.match(err.message, '1f', 'naming the bridge that is not there');
    t.ok(latency < 5000, `failed without waiting for the other disk's timeout (${latency.toFixed(0)} ms)`);
    t.equal(await waitersSettled(waitersBefore), waitersBefore, 'the wait still running was cancelled');
    t.same(
      trace.filter((e) => e.kind === 'start').map((e) => e.source),
      [`loop${n}`],
      'the late disk was being waited for',
    );
    t.same(
      waits.map((w) => [w.source, (w.error as (Error & { code?: string }) | undefined)?.code]),
      [
        ['1f/01', 'ERR_SYSFS'],
        [`/dev/loop${n}`, 'ABORT_ERR'],
      ],
      'the PCI lookup failed at once, then the late wait ended aborted',
    );
    t.same(
      storageTrace.map((e) => e.mountPoint),
      [join(root, 'bad')],
      'the failing storage alone is traced as failed: nothing else was made',
    );
    t.equal(mountSnapshot(), before, 'mountinfo as before');
    t.equal(treeSnapshot(root), tree, 'tree as before');
    t.equal(sb.storages().size, 0);
  });

  t.test('a mount that fails once the disks are found: the job undoes the request', async (t) => {
    const root = scratchDir(t);
    const blank = attachLoop(t); // no filesystem: mounting it as ext4 fails
    const n = unusedLoopNumber();
    plugWhenAwaited(t, new Map([[`loop${n}`, { afterMs: 300, plug: loopLater(t, n) }]]));
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const sb = new Sandbox({ allowedRoots: [root], hotplugTimeoutMs: 20000 });
    const alone = await rejection(
      new Sandbox({ allowedRoots: [root] }).addStorages([
        { driver: 'blk', source: blank, fstype: 'ext4', mountPoint: join(root, 'alone') },
      ]),
    );
    t.equal(mountSnapshot(), before);
    const waits = listen<WaitEvent>(t, 'kata-storage:wait');
    const err = await rejection(
      sb.addStorages(
        [
          mmio(n, join(root, 'late')),
          { driver: 'blk', source: blank, fstype: 'ext4', mountPoint: join(root, 'blank') },
        ],
        { containerId: 'c' },
      ),
    );
    t.equal(err.code, alone.code, `the blank disk's own error, as alone (${err.message})`);
    t.same(
      waits.map((w) => [w.source, w.device]),
      [
        [blank, blank],
        [`/dev/loop${n}`, `/dev/loop${n}`],
      ],
      'both disks were found first',
    );
    t.equal(mountSnapshot(), before, 'the late disk, mounted by the job, was undone: mountinfo as before');
    t.equal(treeSnapshot(root), tree, 'tree as before');
    t.equal(sb.storages().size, 0);
  });

  t.test("a held mount point never uses its wait's result", async (t) => {
    const root = scratchDir(t);
    const n1 = unusedLoopNumber();
    const n2 = unusedLoopNumber([n1]);
    const plug1 = loopLater(t, n1);
    const p = join(root, 'disk');
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const waitersBefore = ueventMonitorState().waiters;
    const trace = waitTrace(t);
    const waits = listen<WaitEvent>(t, 'kata-storage:wait');
    plugWhenAwaited(t, new Map([[`loop${n1}`, { afterMs: 300, plug: plug1 }]]));
    const sb = new Sandbox({ allowedRoots: [root], hotplugTimeoutMs: 20000 });

    // Listed twice in one request: the second storage only gains a reference, so its disk (never
    // plugged) is not looked for.
    const started = performance.now();
    t.same(await sb.addStorages([mmio(n1, p), mmio(n2, p)], { containerId: 'c' }), [p, p]);
    const latency = performance.now() - started;
    t.ok(latency < 5000, `the request did not wait for the unused disk (${latency.toFixed(0)} ms)`);
    t.equal(mountAt(p)?.source, `/dev/loop${n1}`, 'the first disk is what is mounted');
    t.equal(sb.refcount(p), 2);
    t.equal(await waitersSettled(waitersBefore), waitersBefore, 'no wait left running');
    t.same(
      waits.map((w) => [w.source, w.error === undefined ? w.device : (w.error as Error & { code?: string }).code]),
      [[`/dev/loop${n1}`, `/dev/loop${n1}`]],
      'only the first was waited for',
    );

    // The same in a request made storage by storage (a custom driver in it): the second wait,
    // started with the request, is aborted at its turn, its result unused.
    const registry = defaultRegistry().register('plain', {
      async create(storage, ctx) {
        await ctx.makeMountPoint();
        return storage.mountPoint;
      },
    });
    const q = join(root, 'disk2');
    const n3 = unusedLoopNumber([n1, n2]);
    plugWhenAwaited(t, new Map([[`loop${n3}`, { afterMs: 300, plug: loopLater(t, n3) }]]));
    const mixed = new Sandbox({ allowedRoots: [root], hotplugTimeoutMs: 20000, registry });
    waits.length = 0;
    t.same(
      await mixed.addStorages(
        [mmio(n3, q), mmio(n2, q), { driver: 'plain', source: 'x', fstype: 'none', mountPoint: join(root, 'plain') }],
        { containerId: 'm' },
      ),
      [q, q, join(root, 'plain')],
    );
    t.equal(await waitersSettled(waitersBefore), waitersBefore, 'the unused wait was cancelled');
    t.same(
      waits.map((w) => [w.source, w.error === undefined ? w.device : (w.error as Error & { code?: string }).code]),
      [
        [`/dev/loop${n3}`, `/dev/loop${n3}`],
        [`/dev/loop${n2}`, 'ABORT_ERR'],
      ],
      'the second wait ended aborted, its result unused',
    );
    await mixed.removeContainer('m');

    // Held when the request starts: no wait at all.
    trace.length = 0;
    waits.length = 0;
    t.same(await sb.addStorages([mmio(n2, p)], { containerId: 'd' }), [p]);
    t.equal(sb.refcount(p), 3);
    t.same(trace, [], 'no traced wait');
    t.same(waits, [], 'no kata-storage:wait event');

    await sb.removeContainer('d');
    await sb.removeContainer('c');
    t.equal(mountSnapshot(), before, 'mountinfo as before');
    t.equal(treeSnapshot(root), tree, 'tree as before');
  });

  t.test('held when the request started, released before its turn: its wait starts at its turn', async (t) => {
    const root = scratchDir(t);
    const n1 = unusedLoopNumber();
    const n2 = unusedLoopNumber([n1]);
    const p1 = join(root, 'one');
    const p2 = join(root, 'two');
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const trace = waitTrace(t);
    const sb = new Sandbox({ allowedRoots: [root], hotplugTimeoutMs: 20000 });
    t.equal(sb.setSandboxStorage(p2), true);
    const plug1 = loopLater(t, n1);
    plugWhenAwaited(
      t,
      new Map([
        [
          `loop${n1}`,
          {
            afterMs: 300,
            plug: () => {
              // Released while the first disk is awaited: nothing was mounted there.
              sb.unsetSandboxStorage(p2);
              plug1();
            },
          },
        ],
        [`loop${n2}`, { afterMs: 100, plug: loopLater(t, n2) }],
      ]),
    );
    t.same(await sb.addStorages([mmio(n1, p1), mmio(n2, p2)], { containerId: 'c' }), [p1, p2]);
    t.same(
      trace.filter((e) => e.kind !== 'error').map((e) => `${e.kind} ${e.source}`),
      [`start loop${n1}`, `asyncEnd loop${n1}`, `start loop${n2}`, `asyncEnd loop${n2}`],
      'the second wait started only at its turn',
    );
    t.equal(mountAt(p2)?.source, `/dev/loop${n2}`);
    await sb.removeContainer('c');
    t.equal(mountSnapshot(), before, 'mountinfo as before');
    t.equal(treeSnapshot(root), tree, 'tree as before');
  });

  t.test("a driver's own devices(): create() gets its result; a throw fails the request cleanly", async (t) => {
    const root = scratchDir(t);
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const seen: unknown[] = [];
    const registry = defaultRegistry().register('probe', {
      devices: (storage, ctx) => {
        if (storage.source === 'broken') throw new StorageError('ERR_INVALID_STORAGE', 'no such probe device');
        return ctx.waitFor(storage.source, async () => `/dev/${storage.source}`).then((d) => [d]);
      },
      async create(storage, ctx) {
        seen.push(await ctx.devices);
        await ctx.makeMountPoint();
        return storage.mountPoint;
      },
    });
    const waits = listen<WaitEvent>(t, 'kata-storage:wait');
    const sb = new Sandbox({ allowedRoots: [root], registry });
    const probe = (source: string, name: string): Storage => ({
      driver: 'probe',
      source,
      fstype: 'none',
      mountPoint: join(root, name),
    });
    t.same(await sb.addStorages([probe('vdz', 'z')], { containerId: 'c' }), [join(root, 'z')]);
    t.same(seen, [['/dev/vdz']], 'ctx.devices is what devices() resolved with');
    t.same(
      waits.map((w) => [w.driver, w.source, w.device]),
      [['probe', 'vdz', '/dev/vdz']],
    );
    await sb.removeContainer('c');

    const err = await rejection(
      sb.addStorages(
        [
          { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'shm') },
          probe('broken', 'b'),
        ],
        { containerId: 'd' },
      ),
    );
    t.equal(err.code, 'ERR_INVALID_STORAGE', err.message);
    t.equal(mountSnapshot(), before, 'the tmpfs made first was rolled back');
    t.equal(treeSnapshot(root), tree, 'tree as before');
    t.throws(() => new StorageHandlerRegistry().register('x', { devices: 1, create: async () => '' } as never), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
  });

  t.test("the caller's signal aborts every wait", async (t) => {
    const root = scratchDir(t);
    const n1 = unusedLoopNumber();
    const n2 = unusedLoopNumber([n1]);
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const waitersBefore = ueventMonitorState().waiters;
    const trace = waitTrace(t);
    const sb = new Sandbox({ allowedRoots: [root], hotplugTimeoutMs: 20000 });
    const ac = new AbortController();
    const pending = sb.addStorages(
      [
        { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'shm') },
        mmio(n1, join(root, 'one')),
        mmio(n2, join(root, 'two')),
      ],
      { containerId: 'c', signal: ac.signal },
    );
    const timer = setTimeout(() => ac.abort(), 200);
    t.teardown(() => clearTimeout(timer));
    const err = await rejection(pending);
    t.equal(err.code, 'ABORT_ERR');
    t.equal(trace.filter((e) => e.kind === 'start').length, 2, 'both disks were being waited for');
    t.equal(trace.filter((e) => e.kind === 'error').length, 2, 'both waits ended with the abort');
    t.equal(await waitersSettled(waitersBefore), waitersBefore, 'no wait left running');
    t.equal(mountSnapshot(), before, 'the tmpfs made first was rolled back');
    t.equal(treeSnapshot(root), tree);
    t.equal(sb.storages().size, 0);
  });
});
