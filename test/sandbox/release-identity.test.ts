// Release trusts the mount, not the path: a Sandbox releases each mount it made by its mount ID.
// The two faults of the field and their variants, through every release path (removeContainer,
// unsetAndRemoveSandboxStorage, a failed request's rollback, destroy() of a shared storage's last
// reference), with tracing on and off, against real mounts, mountinfo compared before and after:
//  - gone: a storage someone else unmounted, and one lazily detached with a file still open in
//    it (Kata's agent: kata-containers #10166);
//  - stacked: another tmpfs mounted on the storage's mount point and one beneath it (what a
//    container on an rshared volume propagates back; containerd's UnmountAll).
// A mount made by someone else at another path is never touched. Then: the same requests with
// and without subscribers take the same native release, call for call.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  Sandbox,
  defaultRegistry,
  mountSync,
  storageTracing,
  umountSync,
  type Storage,
  type StorageHandler,
  type UmountEvent,
} from '../../lib/index';
import { native } from '../../lib/native';
import { cannotMount, mountSnapshot, mountsUnder, readMountinfo, scratchDir } from '../helpers/mountinfo';
import { listen } from '../helpers/events';

type Fault = 'gone' | 'stacked';
type Release = 'removeContainer' | 'unsetAndRemoveSandboxStorage' | 'rollback' | 'destroy';

const tmpfs = (mountPoint: string, extra: Partial<Storage> = {}): Storage => ({
  driver: 'ephemeral',
  source: 'tmpfs',
  fstype: 'tmpfs',
  options: ['size=64k'],
  mountPoint,
  ...extra,
});

/** Subscribes to every kata-storage channel, plain and traced, until the test ends. */
function traceEverything(t: { teardown(fn: () => void): void }): UmountEvent[] {
  const names = ['mount', 'umount', 'wait', 'mkfs', 'watch'].map((n) => `kata-storage:${n}`);
  const noop = (): void => undefined;
  for (const n of names) subscribe(n, noop);
  const subscribers = { start: noop, end: noop, asyncStart: noop, asyncEnd: noop, error: noop };
  const traced = Object.values(storageTracing);
  for (const c of traced) c.subscribe(subscribers);
  const umounts = listen<UmountEvent>(t, 'kata-storage:umount');
  t.teardown(() => {
    for (const n of names) unsubscribe(n, noop);
    for (const c of traced) c.unsubscribe(subscribers);
  });
  return umounts;
}

/** The mounts at exactly `path`, bottom first. */
const mountsAt = (path: string) => readMountinfo().filter((m) => m.mountPoint === path);

/**
 * Does the fault to `a` (and `b`) from outside the sandbox. Returns what to undo afterwards (the
 * file held open in a lazily detached mount).
 */
function inject(fault: Fault, a: string, b: string): () => void {
  if (fault === 'gone') {
    umountSync(a);
    writeFileSync(join(b, 'held'), 'x');
    const fd = openSync(join(b, 'held'), 'r');
    const r = spawnSync('umount', ['-l', b]);
    if (r.status !== 0) throw new Error(`umount -l ${b}: ${String(r.stderr)}`);
    return () => closeSync(fd);
  }
  writeFileSync(join(a, 'data'), 'the storage’s own data');
  mkdirSync(join(a, 'sub'));
  mountSync('tmpfs', join(a, 'sub'), 'tmpfs', ['size=16k']);
  mountSync('tmpfs', a, 'tmpfs', ['size=16k']);
  return () => undefined;
}

/**
 * What kata-storage:umount must have said about the fault's mounts, storage by storage in the
 * order the release gives them back (a rollback and destroy(): newest first).
 */
function expectedSteps(fault: Fault, a: string, b: string, newestFirst: boolean): [string, string][] {
  const ofA: [string, string][] =
    fault === 'gone'
      ? [[a, 'gone']]
      : [
          // children first: the stacked one hides the one beneath, so it goes first
          [a, 'descendant'],
          [join(a, 'sub'), 'descendant'],
          [a, 'recorded'],
        ];
  const ofB: [string, string][] = [[b, fault === 'gone' ? 'gone' : 'recorded']];
  return newestFirst ? [...ofB, ...ofA] : [...ofA, ...ofB];
}

const releases: Release[] = ['removeContainer', 'unsetAndRemoveSandboxStorage', 'rollback', 'destroy'];

for (const fault of ['gone', 'stacked'] as const) {
  for (const release of releases) {
    for (const traced of [false, true]) {
      t.test(`${fault}: ${release}, tracing ${traced ? 'on' : 'off'}`, { skip: cannotMount }, async (t) => {
        const root = scratchDir(t);
        const a = join(root, 'a');
        const b = join(root, 'b');
        // Someone else's mount at another path, inside the allowed root: never touched.
        const foreign = join(root, 'foreign');
        mkdirSync(foreign);
        mountSync('tmpfs', foreign, 'tmpfs', ['size=16k']);
        t.teardown(() => umountSync(foreign));
        const foreignId = mountsAt(foreign)[0]!.id;
        const before = mountSnapshot();
        const umounts = traced ? traceEverything(t) : undefined;

        let undo = (): void => undefined;
        const registry = defaultRegistry();
        // A driver whose create() does the fault from outside and fails: the request's rollback
        // releases a and b after it.
        const failing: StorageHandler = {
          async create() {
            undo = inject(fault, a, b);
            throw new Error('the third storage failed');
          },
        };
        registry.register('failing', failing);
        const sandbox = new Sandbox({ allowedRoots: [root], registry });

        if (release === 'rollback') {
          const err = await sandbox
            .addStorages(
              [tmpfs(a), tmpfs(b), { driver: 'failing', source: 'none', fstype: 'none', mountPoint: join(root, 'c') }],
              {
                containerId: 'c1',
              },
            )
            .then(
              () => undefined,
              (e: unknown) => e as Error & { rollbackErrors?: Error[] },
            );
          t.match(err, { message: 'the third storage failed' }, 'the request fails with its own error');
          t.equal(err?.rollbackErrors, undefined, 'and its rollback succeeded');
        } else {
          const shared = release === 'destroy';
          if (release === 'unsetAndRemoveSandboxStorage') {
            await sandbox.addStorages([tmpfs(a)]);
            await sandbox.addStorages([tmpfs(b)]);
          } else {
            await sandbox.addStorages([tmpfs(a, { shared })], { containerId: 'c1' });
            await sandbox.addStorages([tmpfs(b, { shared })], { containerId: 'c2' });
          }
          t.equal(mountsAt(a).length, 1, 'a is mounted');
          if (shared) {
            // The containers go; the shared storages stay until destroy().
            await sandbox.removeContainer('c1');
            await sandbox.removeContainer('c2');
            t.equal(sandbox.storages().size, 2, 'shared storages outlive their containers');
          }
          undo = inject(fault, a, b);
          if (release === 'removeContainer') {
            await sandbox.removeContainer('c1');
            await sandbox.removeContainer('c2');
          } else if (release === 'unsetAndRemoveSandboxStorage') {
            t.equal(await sandbox.unsetAndRemoveSandboxStorage(a), true);
            t.equal(await sandbox.unsetAndRemoveSandboxStorage(b), true);
          } else {
            await sandbox.destroy();
          }
        }
        t.same([...sandbox.storages().keys()], [], 'the table holds nothing');
        t.same(mountsUnder(a), [], 'nothing is mounted at or beneath a: its own tmpfs is gone too');
        t.same(mountsUnder(b), [], 'nor at b');
        t.same(
          mountsUnder(root).map((m) => [m.mountPoint, m.id]),
          [[foreign, foreignId]],
          'someone else’s mount at another path is untouched',
        );
        undo();
        t.equal(mountSnapshot(), before, 'mountinfo as before');
        t.same(readdirSync(root), ['foreign'], 'the mount points the sandbox made are removed');
        if (umounts !== undefined) {
          t.same(
            umounts.filter((e) => e.step === 'umount').map((e) => [e.path, e.mount]),
            expectedSteps(fault, a, b, release === 'rollback' || release === 'destroy'),
            'kata-storage:umount: each unmount the release made, from its record',
          );
          t.ok(
            umounts.every((e) => e.error === undefined),
            'no step failed',
          );
        }

        // The same mount point again: a fresh storage, not stacked on anything.
        const again = release === 'destroy' ? new Sandbox({ allowedRoots: [root] }) : sandbox;
        await again.addStorages([tmpfs(a)], { containerId: 'c3' });
        t.equal(mountsAt(a).length, 1, 'the re-add is one mount, not a stack');
        t.notOk(existsSync(join(a, 'data')), 'and holds none of the old data');
        await again.removeContainer('c3');
        await again.destroy();
        if (release !== 'destroy') await sandbox.destroy();
        t.equal(mountSnapshot(), before, 'mountinfo as before, after the re-add and destroy()');
      });
    }
  }
}

t.test(
  'a recorded mount moved beneath another path is still the only one released',
  { skip: cannotMount },
  async (t) => {
    // Another storage's mount stacked by the sandbox itself is never mistaken for a descendant: two
    // storages at sibling paths, one released, the other untouched (mount IDs, not path prefixes).
    const root = scratchDir(t);
    const sandbox = new Sandbox({ allowedRoots: [root] });
    const a = join(root, 'a');
    const ab = join(root, 'ab');
    await sandbox.addStorages([tmpfs(a)], { containerId: 'c1' });
    await sandbox.addStorages([tmpfs(ab)], { containerId: 'c2' });
    const kept = mountsAt(ab)[0]!.id;
    await sandbox.removeContainer('c1');
    t.same(mountsAt(a), [], 'a released');
    t.same(
      mountsAt(ab).map((m) => m.id),
      [kept],
      'ab, whose path a is a prefix of, untouched',
    );
    await sandbox.destroy();
    t.same(mountsUnder(root), []);
  },
);

t.test(
  'a release that cannot unmount keeps the entry, and the table agrees with mountinfo',
  { skip: cannotMount },
  async (t) => {
    const root = scratchDir(t);
    const sandbox = new Sandbox({ allowedRoots: [root] });
    const a = join(root, 'a');
    await sandbox.addStorages([tmpfs(a)], { containerId: 'c1' });
    // Busy beneath: a mount on a subdirectory with a file held open in it.
    mkdirSync(join(a, 'sub'));
    mountSync('tmpfs', join(a, 'sub'), 'tmpfs', ['size=16k']);
    const fd = openSync(join(a, 'sub', 'held'), 'w');
    const err = await sandbox.removeContainer('c1').then(
      () => undefined,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    t.match(err, { code: 'EBUSY', syscall: 'umount2', path: join(a, 'sub') }, 'the busy mount beneath is named');
    t.same(mountsAt(a).length, 1, 'the storage is still mounted');
    t.match(sandbox.storages().get(a), { refcount: 0, cleanupPending: true }, 'and still in the table, marked');
    closeSync(fd);
    await sandbox.destroy();
    t.same(mountsUnder(root), [], 'destroy() finished it: the one beneath first');
    t.same([...sandbox.storages().keys()], []);
  },
);

t.test(
  'the same requests with and without subscribers take the same native release',
  { skip: cannotMount },
  async (t) => {
    // Every call the sandbox makes into the addon's release side, with its arguments and results.
    type Call = [name: string, detail: string];
    const calls: Call[] = [];
    const spied = ['releaseStorages', 'umount', 'umountSync', 'removeEntry', 'removeTree'] as const;
    const binding = native as unknown as Record<string, (...args: unknown[]) => unknown>;
    const originals = new Map(spied.map((n) => [n, binding[n]!]));
    let root = '';
    const norm = (s: string): string => s.split(root).join('<root>');
    for (const name of spied) {
      const original = originals.get(name)!;
      binding[name] = (...args: unknown[]) => {
        const result = original.apply(native, args);
        if (name !== 'releaseStorages') {
          calls.push([name, norm(String(args[0]))]);
          return result;
        }
        return (result as Promise<unknown[]>).then((r) => {
          // The paths released, and the steps taken (kind per step, paths).
          const kinds = Array.from(r[4] as Float64Array).filter((_, i) => i % 2 === 0);
          calls.push([name, `${norm(String(args[0]))} -> ${kinds.join(',')} ${norm(String(r[5]))}`]);
          return r;
        });
      };
    }
    t.teardown(() => {
      for (const [n, f] of originals) binding[n] = f;
    });

    const registry = defaultRegistry();
    // A driver that goes through ctx.mount and ctx.makeDirectory (an overlay's upper/work): its
    // mount recorded by ID through lib/mount.ts, its tree removed by the same native release.
    const custom: StorageHandler = {
      async create(storage, ctx) {
        await ctx.makeMountPoint();
        const tree = join(ctx.allowedRoots[0]!, 'trees', basename(storage.mountPoint));
        await ctx.makeDirectory(tree);
        writeFileSync(join(tree, 'content'), 'x');
        await ctx.mount('tmpfs', storage.mountPoint, 'tmpfs', ['size=64k']);
        return storage.mountPoint;
      },
    };
    registry.register('custom', custom);

    async function run(): Promise<{ calls: Call[]; snapshots: string[] }> {
      calls.length = 0;
      const snapshots: string[] = [];
      const snap = (): number => snapshots.push(norm(mountSnapshot()) + '\n' + readdirSync(root).sort().join(','));
      const sandbox = new Sandbox({ allowedRoots: [root], registry });
      const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((x) => join(root, x)) as [string, string, string, string];
      await sandbox.addStorages([tmpfs(a), tmpfs(b)], { containerId: 'c1' });
      await sandbox.addStorages([{ driver: 'custom', source: 'tmpfs', fstype: 'tmpfs', mountPoint: c }], {
        containerId: 'c2',
      });
      await sandbox.addStorages([tmpfs(d, { shared: true })], { containerId: 'c2' });
      snap();
      inject('stacked', a, b);
      umountSync(b);
      calls.length = 0; // the faults' own unmount is not the sandbox's
      await sandbox.removeContainer('c1');
      snap();
      await sandbox.removeContainer('c2');
      snap();
      await sandbox.destroy();
      snap();
      return { calls: [...calls], snapshots };
    }

    root = scratchDir(t);
    const quiet = await run();
    const traceT = { teardown: (fn: () => void) => t.teardown(fn) };
    const umounts = traceEverything(traceT);
    root = scratchDir(t);
    const loud = await run();
    t.same(loud.calls, quiet.calls, 'the same native calls, with the same arguments and steps');
    t.same(loud.snapshots, quiet.snapshots, 'the same mountinfo and tree after each call');
    t.same(
      quiet.calls.map(([n]) => n),
      ['releaseStorages', 'releaseStorages', 'releaseStorages'],
      'one release job per call, no unmount of its own',
    );
    t.match(
      quiet.calls[0]![1],
      / -> 2,1,1,0 <root>\/b\0<root>\/a\0<root>\/a\/sub\0<root>\/a\0$/,
      'b was gone; a went with what sat on it',
    );
    t.same(
      umounts.filter((e) => e.step === 'umount').map((e) => [norm(e.path), e.mount]),
      [
        ['<root>/b', 'gone'],
        ['<root>/a', 'descendant'],
        ['<root>/a/sub', 'descendant'],
        ['<root>/a', 'recorded'],
        ['<root>/c', 'recorded'],
        ['<root>/d', 'recorded'],
      ],
      'the events are the job’s record',
    );
    t.same(readdirSync(root), [], 'the tree made with makeDirectory went with its content');
  },
);
