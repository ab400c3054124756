// Observability: the tracing channels publish an operation when it starts (a long device wait is
// visible at once), direct mount()/umount() calls and every kind of storage add are published,
// umount events name the container, NODE_DEBUG=kata-storage logs, and nothing is built when
// nobody listens.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tracePromise, traceSync } from '../../lib/events';
import {
  Sandbox,
  findPciBlockDevice,
  mount,
  mountSync,
  remount,
  storageTracing,
  umount,
  umountSync,
  type TracingSubscribers,
  type UmountEvent,
} from '../../lib/index';
import { ensureBuilt, packageRoot } from '../helpers/build';
import { listen } from '../helpers/events';
import { cannotMount, mountSnapshot, scratchDir } from '../helpers/mountinfo';

type Seen = [phase: string, context: Record<string, unknown>][];

/** Subscribes to every phase of a tracing channel for the test's lifetime. */
function record<C>(
  t: tap.Test,
  channel: { subscribe(s: TracingSubscribers<C>): void; unsubscribe(s: TracingSubscribers<C>): unknown },
): Seen {
  const seen: Seen = [];
  const at = (phase: string) => (ctx: C) => void seen.push([phase, { ...(ctx as Record<string, unknown>) }]);
  const subs: TracingSubscribers<C> = {
    start: at('start'),
    end: at('end'),
    asyncStart: at('asyncStart'),
    asyncEnd: at('asyncEnd'),
    error: at('error'),
  };
  channel.subscribe(subs);
  t.teardown(() => void channel.unsubscribe(subs));
  return seen;
}

const phases = (seen: Seen): string[] => seen.map(([p]) => p);

function emptySysfs(t: tap.Test): string {
  const sys = scratchDir(t, 'kata-storage-sys-');
  mkdirSync(join(sys, 'devices', 'pci0000:00'), { recursive: true });
  return sys;
}

t.test('a device wait is published when it starts, long before it ends', async (t) => {
  const seen = record(t, storageTracing.wait);
  const sysfsRoot = emptySysfs(t);
  const t0 = performance.now();
  const pending = findPciBlockDevice('05', { sysfsRoot, timeoutMs: 400 });
  t.same(phases(seen), ['start', 'end'], 'start (and the synchronous end) are out before the wait');
  t.match(seen[0]![1], { bus: 'pci', source: '05', timeoutMs: 400 });
  await t.rejects(pending, { code: 'ETIMEDOUT' });
  t.same(phases(seen), ['start', 'end', 'error', 'asyncStart', 'asyncEnd']);
  t.match(seen[2]![1], { error: { code: 'ETIMEDOUT' } });
  t.ok(performance.now() - t0 >= 390, 'the error came at the deadline');
});

t.test('a device already there resolves without a wait to trace', async (t) => {
  const seen = record(t, storageTracing.wait);
  const sys = emptySysfs(t);
  mkdirSync(join(sys, 'devices', 'pci0000:00', '0000:00:02.0', 'virtio2', 'block', 'vdq'), { recursive: true });
  t.equal(await findPciBlockDevice('02', { sysfsRoot: sys, devRoot: '/dev' }), '/dev/vdq');
  t.same(seen, []);
});

t.test(
  'direct mount()/umount() and their sync forms are traced, failures included',
  { skip: cannotMount },
  async (t) => {
    const dir = scratchDir(t);
    const before = mountSnapshot();
    const mounts = record(t, storageTracing.mount);
    const umounts = record(t, storageTracing.umount);
    const p = mount('tmpfs', dir, 'tmpfs', ['size=1m']);
    t.same(phases(mounts), ['start', 'end'], 'published as soon as mount() is called');
    await p;
    t.same(phases(mounts), ['start', 'end', 'asyncStart', 'asyncEnd']);
    t.match(mounts[0]![1], { source: 'tmpfs', target: dir, fstype: 'tmpfs', options: ['size=1m'] });
    await umount(dir);
    t.same(phases(umounts), ['start', 'end', 'asyncStart', 'asyncEnd']);
    t.match(umounts[0]![1], { target: dir, detach: false, force: false, busyTimeoutMs: 0 });

    mounts.length = 0;
    await t.rejects(mount('none', dir, 'no-such-fs'));
    t.same(phases(mounts), ['start', 'end', 'error', 'asyncStart', 'asyncEnd']);

    mounts.length = 0;
    umounts.length = 0;
    mountSync('tmpfs', dir, 'tmpfs', []);
    umountSync(dir);
    t.same(phases(mounts), ['start', 'end']);
    t.same(phases(umounts), ['start', 'end']);
    umounts.length = 0;
    t.throws(() => umountSync(dir), { code: 'EINVAL' });
    t.same(phases(umounts), ['start', 'error', 'end']);
    t.equal(mountSnapshot(), before);
  },
);

t.test(
  'remount() is traced like mount()/umount(): published when called, the API used as result, failures included',
  { skip: cannotMount },
  async (t) => {
    const dir = scratchDir(t);
    const before = mountSnapshot();
    const remounts = record(t, storageTracing.remount);
    await mount('tmpfs', dir, 'tmpfs', ['size=1m']);
    const p = remount(dir, ['size=2m']);
    t.same(phases(remounts), ['start', 'end'], 'published as soon as remount() is called');
    const api = await p;
    t.same(phases(remounts), ['start', 'end', 'asyncStart', 'asyncEnd']);
    t.match(remounts[0]![1], { target: dir, options: ['size=2m'] });
    t.ok(['auto', 'new', 'legacy'].includes(remounts[0]![1].mountApi as string), 'the mount API asked for');
    t.equal(remounts[2]![1].result, api, 'result: the API the kernel was driven through');
    t.match(
      readFileSync('/proc/self/mountinfo', 'utf8'),
      new RegExp(` ${dir} .* tmpfs tmpfs \\S*size=2048k`),
      'the remount happened',
    );
    await umount(dir);

    remounts.length = 0;
    await t.rejects(remount(dir, ['size=2m']), { code: 'EINVAL' }, 'no longer a mount point');
    t.same(phases(remounts), ['start', 'end', 'error', 'asyncStart', 'asyncEnd']);
    remounts.length = 0;
    await t.rejects(remount('', []), { code: 'ERR_INVALID_ARG_VALUE' });
    t.same(remounts, [], 'a refused argument is refused before anything is traced');
    t.equal(mountSnapshot(), before);
  },
);

t.test(
  'sandbox: local storages, reference-only adds and the sandbox calls are traced; umount events name the container',
  { skip: cannotMount },
  async (t) => {
    const root = scratchDir(t);
    const before = mountSnapshot();
    const storages = record(t, storageTracing.storage);
    const adds = record(t, storageTracing.addStorages);
    const removes = record(t, storageTracing.removeContainer);
    const destroys = record(t, storageTracing.destroy);
    const umountEvents = listen<UmountEvent>(t, 'kata-storage:umount');

    const sb = new Sandbox({ allowedRoots: [root] });
    const local = { driver: 'local', source: 'local', fstype: 'local', mountPoint: join(root, 'l') };
    const shm = {
      driver: 'ephemeral',
      source: 'shm',
      fstype: 'tmpfs',
      options: ['size=1m'],
      mount_point: join(root, 'shm'),
    };
    await sb.addStorages([local, shm], { containerId: 'a' });
    await sb.addStorages([local, shm], { containerId: 'b' });
    const done = storages.filter(([p]) => p === 'asyncEnd').map(([, c]) => c);
    t.equal(done.length, 4);
    t.match(done[0], {
      driver: 'local',
      mountPoint: local.mountPoint,
      containerId: 'a',
      result: { taken: { created: true } },
    });
    t.match(done[1], {
      driver: 'ephemeral',
      containerId: 'a',
      result: { held: shm.mount_point, taken: { created: true } },
    });
    t.match(
      done[2],
      { driver: 'local', containerId: 'b', result: { taken: { created: false } } },
      'a reference-only add is published',
    );
    t.match(done[3], { driver: 'ephemeral', containerId: 'b', result: { taken: { created: false } } });
    t.same(
      adds.filter(([p]) => p === 'start').map(([, c]) => c),
      [
        { call: 'addStorages', containerId: 'a', storages: 2 },
        { call: 'addStorages', containerId: 'b', storages: 2 },
      ],
    );

    await sb.removeContainer('a');
    t.same(umountEvents, [], 'container b still holds both');
    await sb.removeContainer('b');
    t.match(umountEvents, [{ driver: 'ephemeral', mountPoint: shm.mount_point, reason: 'release', containerId: 'b' }]);
    t.same(phases(removes), ['start', 'end', 'asyncStart', 'asyncEnd', 'start', 'end', 'asyncStart', 'asyncEnd']);
    t.match(removes[0]![1], { call: 'removeContainer', containerId: 'a' });

    // A failed request's rollback names the container too.
    umountEvents.length = 0;
    await t.rejects(
      sb.addStorages([shm, { ...local, driver: 'ephemeral', fstype: 'no-such-fs', source: 'x' }], { containerId: 'c' }),
    );
    t.match(umountEvents, [{ mountPoint: shm.mount_point, reason: 'rollback', containerId: 'c' }]);
    t.match(
      storages.filter(([p]) => p === 'error').map(([, c]) => c),
      [{ containerId: 'c', error: { code: 'ENODEV' } }],
    );

    await sb.addStorages([shm]);
    umountEvents.length = 0;
    await sb.destroy();
    t.match(umountEvents, [{ mountPoint: shm.mount_point, reason: 'destroy' }]);
    t.equal(umountEvents[0]!.containerId, undefined, 'destroy() is no container');
    t.same(phases(destroys), ['start', 'end', 'asyncStart', 'asyncEnd']);
    t.equal(mountSnapshot(), before);
  },
);

t.test('nothing is built or measured when nobody listens', async (t) => {
  let built = 0;
  const ctx = (): { source: string; target: string; fstype: string; options: string[] } => {
    built++;
    return { source: 's', target: 't', fstype: 'f', options: [] };
  };
  t.equal(await tracePromise('mount', ctx, async () => 7), 7);
  t.equal(
    traceSync('mount', ctx, () => 8),
    8,
  );
  t.equal(built, 0, 'no subscriber: the context was never made');
  const seen = record(t, storageTracing.mount);
  t.equal(await tracePromise('mount', ctx, async () => 9), 9);
  t.equal(built, 1);
  t.same(phases(seen), ['start', 'end', 'asyncStart', 'asyncEnd']);
  t.match(seen[3]![1], { result: 9 });
});

t.test('NODE_DEBUG=kata-storage logs each operation as it starts and ends', async (t) => {
  ensureBuilt();
  const sys = emptySysfs(t);
  const script = `require(${JSON.stringify(join(packageRoot, 'dist', 'index.js'))}).findPciBlockDevice('05', { sysfsRoot: ${JSON.stringify(sys)}, timeoutMs: 50 }).catch(() => {})`;
  const on = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_DEBUG: 'kata-storage' },
  });
  t.equal(on.status, 0, on.stderr);
  t.match(on.stderr, /KATA-STORAGE \d+: wait start \{"bus":"pci","source":"05","timeoutMs":50\}/);
  t.match(on.stderr, /KATA-STORAGE \d+: wait failed in [\d.]+ ms: ETIMEDOUT: no device after 50 ms/);
  const off = spawnSync(process.execPath, ['-e', script], {
    encoding: 'utf8',
    env: { ...process.env, NODE_DEBUG: '' },
  });
  t.equal(off.stderr, '', 'silent without NODE_DEBUG');
});
