// Release faults reported from the field, by kind: each failing input is a test here, with its variations,
// against real mounts, mountinfo (and the tree) checked before and after.
import t from 'tap';
import { closeSync, existsSync, mkdirSync, openSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  Sandbox,
  defaultRegistry,
  mountSync,
  normalizeStorage,
  umountSync,
  type MountEvent,
  type Storage,
  type StorageInput,
  type UmountEvent,
} from '../../lib/index';
import { native } from '../../lib/native';
import { attachLoop } from '../helpers/loop';
import { cannotMount, mountAt, mountSnapshot, mountsUnder, scratchDir } from '../helpers/mountinfo';
import { listen } from '../helpers/events';
import { treeSnapshot } from '../helpers/tree';

const tmpfs = (mountPoint: string, options: string[] = ['size=64k'], extra: Partial<Storage> = {}): Storage => ({
  driver: 'ephemeral',
  source: 'tmpfs',
  fstype: 'tmpfs',
  options,
  mountPoint,
  ...extra,
});

const remount = (path: string, mode: 'ro' | 'rw'): void => void execFileSync('mount', ['-o', `remount,${mode}`, path]);

t.test('protobuf JSON as a runtime emits it (proto3 omits defaults)', async (t) => {
  const base = { driver: 'local', source: 'local', fstype: 'local', mount_point: '/m' };
  t.same(normalizeStorage({ ...base, fs_group: {} }).fsGroup, { groupId: 0 }, 'fs_group {} is group 0, policy Always');
  t.same(normalizeStorage({ ...base, fs_group: { group_change_policy: 'OnRootMismatch' } }).fsGroup, {
    groupId: 0,
    groupChangePolicy: 'OnRootMismatch',
  });
  t.same(
    normalizeStorage({ ...base, fs_group: { group_id: 5 } }).fsGroup,
    { groupId: 5 },
    'absent policy: Always (the default)',
  );
  t.same(normalizeStorage({ ...base, fsGroup: { groupId: '7', groupChangePolicy: 1 } }).fsGroup, {
    groupId: 7,
    groupChangePolicy: 'OnRootMismatch',
  });
  // lowerCamel JSON names (what protobuf's JSON printers emit by default).
  const camel = {
    driver: 'blk',
    driverOptions: ['create_filesystem'],
    source: '02',
    fstype: 'ext4',
    mountPoint: '/m',
    fsGroup: { groupId: 1 },
  };
  t.same(normalizeStorage(camel), camel, 'read as it is');
  const bare = normalizeStorage({ mount_point: '/m' });
  t.same(
    bare,
    { driver: '', source: '', fstype: '', mountPoint: '/m' },
    'absent strings empty, absent lists and shared left out',
  );
  t.same(
    normalizeStorage({ ...base, options: null, driver_options: null, shared: null, fs_group: null }),
    normalizeStorage(base),
    'null is absent',
  );
  for (const [bad, field] of [
    [{ ...base, mount_pont: '/x' }, 'mount_pont'],
    [{ ...base, fsType: 'ext4' }, 'fsType'],
    [{ ...base, fs_group: { group_idd: 1 } }, 'fsGroup.group_idd'],
    [{ ...base, fs_group: { groupId: 1, policy: 1 } }, 'fsGroup.policy'],
  ] as const) {
    t.throws(
      () => normalizeStorage(bad),
      { code: 'ERR_INVALID_STORAGE', field, message: new RegExp(`unknown key '${field.replace('.', '\\.')}'`) },
      field,
    );
  }
});

t.test('errors name the culprit', async (t) => {
  const root = scratchDir(t);
  const sb = new Sandbox({ allowedRoots: [root] });
  const err = await sb.addStorages([tmpfs(join(root, 'x'), [], { driver: 'floppy' })]).catch((e: Error) => e);
  t.match(err, {
    code: 'ERR_UNKNOWN_STORAGE_DRIVER',
    value: 'floppy',
    message: /registered: virtio-fs, 9p, blk, .*overlayfs/,
  });
  t.match((err as { registered?: string[] }).registered, defaultRegistry().drivers());
  const atRoot = await sb.addStorages([tmpfs(root)]).catch((e: Error) => e);
  t.match(atRoot, { code: 'ERR_INVALID_STORAGE', field: 'mountPoint', message: /is an allowed root itself/ });
  const outside = await sb.addStorages([tmpfs('/elsewhere/x')]).catch((e: Error) => e);
  t.match(outside, { code: 'ERR_INVALID_STORAGE', message: /outside the allowed roots/ });
  const typo = await sb
    .addStorages([{ ...tmpfs(join(root, 'y')), mount_pont: join(root, 'y') } as StorageInput])
    .catch((e: Error) => e);
  t.match(
    typo,
    { code: 'ERR_INVALID_STORAGE', field: 'mount_pont', value: 'mount_pont' },
    'a typo is named, not "mountPoint must not be empty"',
  );
  t.equal(sb.storages().size, 0);
});

t.test('sandbox faults for real', { skip: cannotMount }, async (t) => {
  t.test('fsGroup on a read-only mount is skipped and reported; writable mounts keep the masks', async (t) => {
    const root = scratchDir(t);
    const mounts = listen<MountEvent>(t, 'kata-storage:mount');
    const sb = new Sandbox({ allowedRoots: [root] });
    const dev = attachLoop(t, { ext4: true });
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    // The field input: an ext4 disk, options ['ro'], fsGroup 2000 (EROFS chown lost+found before).
    const ro = join(root, 'ro');
    await sb.addStorages(
      [{ driver: 'blk', source: dev, fstype: 'ext4', options: ['ro'], mountPoint: ro, fsGroup: { groupId: 2000 } }],
      { containerId: 'c' },
    );
    t.ok(mountAt(ro)?.mountOptions.includes('ro'), 'mounted read-only');
    t.equal(statSync(join(ro, 'lost+found')).gid, 0, 'nothing chowned');
    t.equal(mounts.at(-1)?.fsGroupSkipped, 'read-only', 'the mount event says why');
    await sb.removeContainer('c');
    // The same disk writable: the group change happens.
    const rw = join(root, 'rw');
    await sb.addStorages([{ driver: 'blk', source: dev, fstype: 'ext4', mountPoint: rw, fsGroup: { groupId: 2000 } }], {
      containerId: 'c',
    });
    t.equal(statSync(join(rw, 'lost+found')).gid, 2000, 'writable: chowned');
    t.equal(statSync(join(rw, 'lost+found')).mode & 0o7777, 0o2770, 'writable: rw masks and setgid');
    t.equal(mounts.at(-1)?.fsGroupSkipped, undefined);
    await sb.removeContainer('c');
    // ephemeral: fsGroup and fsgid= on a read-only tmpfs, both skipped, both reported.
    for (const extra of [{ fsGroup: { groupId: 77 } }, {}]) {
      const p = join(root, 'shm');
      const options = extra.fsGroup ? ['size=64k', 'ro'] : ['size=64k', 'ro', 'fsgid=77'];
      await sb.addStorages([tmpfs(p, options, extra)], { containerId: 'c' });
      t.equal(statSync(p).gid, 0, `${options.join(',')}: group unchanged`);
      t.equal(mounts.at(-1)?.fsGroupSkipped, 'read-only');
      await sb.removeContainer('c');
    }
    t.equal(mountSnapshot(), before, 'mountinfo as before');
    t.equal(treeSnapshot(root), tree, 'tree as before');
  });

  t.test('a directory that cannot be removed after the unmount does not fail or wedge the release', async (t) => {
    const root = scratchDir(t);
    const umounts = listen<UmountEvent>(t, 'kata-storage:umount');
    const roDir = join(root, 'ro');
    mkdirSync(roDir);
    mountSync('tmpfs', roDir, 'tmpfs', ['size=64k']);
    t.teardown(() => umountSync(roDir));
    const before = mountSnapshot();
    const sb = new Sandbox({ allowedRoots: [root] });
    const a = join(roDir, 'a');
    await sb.addStorages([tmpfs(a)], { containerId: 'c1' });
    remount(roDir, 'ro');
    await sb.removeContainer('c1'); // rejected with EROFS rmdir before, leaving the entry pending forever
    t.equal(mountAt(a), undefined, 'unmounted');
    t.equal(sb.storages().size, 0, 'no entry left, nothing pending');
    const removal = umounts.find((u) => u.step === 'remove');
    t.match(
      removal,
      { step: 'remove', path: a, mountPoint: a, reason: 'release', error: { code: 'EROFS', syscall: 'rmdir' } },
      'reported',
    );
    t.ok(existsSync(a), 'the directory stays (read-only parent)');
    // A later add of the same mount point mounts it again (the directory is there).
    await sb.addStorages([tmpfs(a)], { containerId: 'c2' });
    t.equal(mountAt(a)?.fstype, 'tmpfs', 'mounted again');
    t.equal(sb.refcount(a), 1);
    await sb.removeContainer('c2');
    t.equal(mountAt(a), undefined);
    await sb.destroy();
    t.ok(existsSync(a), 'still read-only: still there');
    // Once the parent is writable again, the retry removes it.
    remount(roDir, 'rw');
    await sb.destroy();
    t.notOk(existsSync(a), 'retried and removed');
    t.equal(mountSnapshot(), before, 'mountinfo as before');
  });

  t.test(
    'each best-effort step failing: mount point not empty, parent read-only on rollback, parent shared',
    async (t) => {
      const root = scratchDir(t);
      const umounts = listen<UmountEvent>(t, 'kata-storage:umount');
      const registry = defaultRegistry();
      // Writes below its mount point before mounting over it: after the unmount rmdir is ENOTEMPTY.
      registry.register('test-dirty', {
        async create(storage, ctx) {
          await ctx.makeMountPoint();
          writeFileSync(join(storage.mountPoint, 'hidden'), 'under the mount');
          await ctx.mount('tmpfs', storage.mountPoint, 'tmpfs', ['size=64k']);
          return storage.mountPoint;
        },
      });
      // Mounts, makes its parent read-only, then fails: the rollback's rmdir is EROFS.
      registry.register('test-ro-rollback', {
        async create(storage, ctx) {
          await ctx.makeMountPoint();
          await ctx.mount('tmpfs', storage.mountPoint, 'tmpfs', ['size=64k']);
          remount(join(storage.mountPoint, '..'), 'ro');
          throw Object.assign(new Error('injected'), { code: 'ERR_TEST_INJECTED' });
        },
      });
      const sb = new Sandbox({ allowedRoots: [root], registry });
      const before = mountSnapshot();

      const dirty = join(root, 'dirty');
      await sb.addStorages([{ driver: 'test-dirty', source: 'x', fstype: 'x', mountPoint: dirty }], {
        containerId: 'c',
      });
      await sb.removeContainer('c');
      t.equal(mountAt(dirty), undefined);
      t.equal(sb.storages().size, 0);
      t.match(umounts.at(-1), { step: 'remove', path: dirty, error: { code: 'ENOTEMPTY' } });
      t.ok(existsSync(join(dirty, 'hidden')), 'what was under the mount is not deleted');

      const par = join(root, 'par');
      mkdirSync(par);
      mountSync('tmpfs', par, 'tmpfs', ['size=64k']);
      const p = join(par, 'v');
      const err = await sb
        .addStorages([{ driver: 'test-ro-rollback', source: 'x', fstype: 'x', mountPoint: p }], { containerId: 'c' })
        .catch((e: Error) => e);
      t.match(err, { code: 'ERR_TEST_INJECTED' }, 'the original error');
      t.notOk((err as { rollbackErrors?: unknown }).rollbackErrors, 'the rollback did what is essential');
      t.equal(mountAt(p), undefined, 'unmounted');
      t.equal(sb.storages().size, 0, 'no entry claims it');
      t.match(umounts.at(-1), { step: 'remove', path: p, reason: 'rollback', error: { code: 'EROFS' } });
      remount(par, 'rw');
      await sb.addStorages([tmpfs(p)], { containerId: 'd' });
      t.equal(mountAt(p)?.fstype, 'tmpfs', 'a later add of it really mounts');
      await sb.removeContainer('d');
      t.notOk(existsSync(p), 'taken over by that storage, removed with it');

      // A parent we created that holds a directory someone else made: kept quietly, pruned later.
      const shared = join(root, 'shared');
      await sb.addStorages([tmpfs(join(shared, 'a'))], { containerId: 'e' });
      mkdirSync(join(shared, 'theirs'));
      const events = umounts.length;
      await sb.removeContainer('e');
      t.equal(umounts.length, events + 1, 'only the unmount is published (a non-empty parent is no news)');
      t.ok(existsSync(shared), 'the parent stays while not empty');
      execFileSync('rmdir', [join(shared, 'theirs')]);
      await sb.removeContainer('nobody');
      t.notOk(existsSync(shared), 'and goes at the next release once empty');
      umountSync(par);
      t.equal(mountSnapshot(), before, 'mountinfo as before');
    },
  );

  t.test('the table never claims what is not there', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    // The field input: ~4,250 bytes of path under the root (22 directories were created before).
    const long = join(root, ...Array.from({ length: 22 }, (_, i) => `${i}`.padEnd(190, 'd')));
    t.ok(Buffer.byteLength(long) > 4200);
    for (const [name, mp, why] of [
      ['longer than PATH_MAX', long, /PATH_MAX/],
      ['a component over NAME_MAX', join(root, 'n'.repeat(256)), /NAME_MAX/],
      ['a multibyte component over NAME_MAX bytes', join(root, 'é'.repeat(128)), /NAME_MAX/],
      // 86 UTF-16 units, 258 bytes: the fewest units that can pass NAME_MAX (3 bytes each).
      ['3-byte characters just over NAME_MAX', join(root, '€'.repeat(86)), /NAME_MAX/],
    ] as const) {
      for (const cid of ['c1', 'c2']) {
        const err = await sb
          .addStorages([tmpfs(join(root, 'ok')), tmpfs(mp)], { containerId: cid })
          .catch((e: Error) => e);
        t.match(err, { code: 'ERR_INVALID_STORAGE', field: 'mountPoint', message: why }, `${name} (${cid})`);
      }
    }
    t.equal(mountSnapshot(), before, 'nothing mounted');
    t.equal(treeSnapshot(root), tree, 'nothing created');
    t.equal(sb.storages().size, 0, 'no entry');
    // The limits themselves are fine: a 255-byte name and a path just under PATH_MAX mount.
    const edge = [join(root, 'n'.repeat(255)), join(root, '€'.repeat(85))];
    const deep = join(root, ...Array.from({ length: 30 }, () => 'p'.repeat(200)));
    edge.push(deep.slice(0, 4095 - 1).replace(/\/$/, 'q'));
    for (const mp of edge) {
      await sb.addStorages([tmpfs(mp)], { containerId: 'edge' });
      t.equal(mountAt(mp)?.fstype, 'tmpfs', `${Buffer.byteLength(mp)} bytes, mounted`);
      await sb.removeContainer('edge');
      t.equal(mountAt(mp), undefined);
    }
    t.equal(treeSnapshot(root), tree, 'all removed again');

    // An unmount failing during a rollback: the entry stays held by nobody and marked, never
    // refcount 1 with nothing behind it; a second add fails until it can really mount.
    const registry = defaultRegistry();
    const fds: number[] = [];
    registry.register('test-busy-fail', {
      async create(storage, ctx) {
        await ctx.makeMountPoint();
        await ctx.mount('tmpfs', storage.mountPoint, 'tmpfs', ['size=64k']);
        fds.push(openSync(join(storage.mountPoint, 'held'), 'w'));
        throw Object.assign(new Error('injected'), { code: 'ERR_TEST_INJECTED' });
      },
    });
    const sb2 = new Sandbox({ allowedRoots: [root], registry });
    const p = join(root, 'busy');
    const err = await sb2
      .addStorages([{ driver: 'test-busy-fail', source: 'x', fstype: 'x', mountPoint: p }], { containerId: 'c1' })
      .catch((e: Error) => e);
    t.match(err, { code: 'ERR_TEST_INJECTED', rollbackErrors: [{ code: 'EBUSY', syscall: 'umount2' }] });
    t.same(
      sb2.storages().get(p),
      { refcount: 0, driver: 'test-busy-fail', shared: false, cleanupPending: true },
      'held by nobody, marked',
    );
    t.equal(sb2.refcount(p), 0);
    await t.rejects(
      sb2.addStorages([tmpfs(p)], { containerId: 'c2' }),
      { code: 'EBUSY' },
      'a second add fails rather than resolving on a plain directory',
    );
    t.equal(mountsUnder(p).length, 1, 'only the stuck mount');
    for (const fd of fds) closeSync(fd);
    t.same(await sb2.addStorages([tmpfs(p)], { containerId: 'c2' }), [p]);
    t.equal(mountsUnder(p).length, 1, 'the stuck one went, the new one is there');
    t.equal(sb2.refcount(p), 1);
    await sb2.destroy();
    t.equal(mountSnapshot(), before, 'mountinfo as before');
    t.equal(treeSnapshot(root), tree, 'tree as before');
  });

  t.test('a destroyed sandbox stays destroyed; removeContainer of an unknown id releases nothing', async (t) => {
    const root = scratchDir(t);
    const registry = defaultRegistry();
    let enter!: () => void;
    const entered = new Promise<void>((r) => (enter = r));
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    registry.register('test-gated', {
      async create(storage, ctx) {
        await ctx.makeMountPoint();
        enter();
        await gate;
        await ctx.mount('tmpfs', storage.mountPoint, 'tmpfs', ['size=64k']);
        return storage.mountPoint;
      },
    });
    const sb = new Sandbox({ allowedRoots: [root], registry });
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const kept = join(root, 'kept');
    await sb.addStorages([tmpfs(kept)], { containerId: 'c' });
    await sb.removeContainer('never-added');
    t.equal(sb.refcount(kept), 1, 'an unknown id releases nothing');
    // An add in flight when destroy() runs: destroy cannot see it, so it must not survive.
    const inflight = sb.addStorages(
      [{ driver: 'test-gated', source: 'x', fstype: 'x', mountPoint: join(root, 'late') }],
      { containerId: 'd' },
    );
    await entered;
    await sb.destroy();
    t.ok(sb.destroyed);
    open();
    await t.rejects(inflight, { code: 'ERR_SANDBOX_DESTROYED' });
    t.equal(mountSnapshot(), before, 'everything unmounted, the late mount too');
    t.equal(treeSnapshot(root), tree);
    const err = await sb.addStorages([tmpfs(kept)], { containerId: 'c' }).catch((e: Error) => e);
    t.match(err, { name: 'StorageError', code: 'ERR_SANDBOX_DESTROYED' }, 'addStorages after destroy()');
    t.throws(() => sb.setSandboxStorage(kept), { code: 'ERR_SANDBOX_DESTROYED' });
    // Two synchronous calls: the add's job (on the pool: more storages than run on the calling
    // thread) finishes after destroy() has begun.
    const racing = new Sandbox({ allowedRoots: [root] });
    const many = Array.from({ length: native.maxStoragesHere }, (_, i) => tmpfs(join(root, `many${i}`)));
    const add = racing.addStorages([tmpfs(kept), ...many], { containerId: 'c' });
    const destroying = racing.destroy();
    await t.rejects(add, { code: 'ERR_SANDBOX_DESTROYED' });
    await destroying;
    await sb.removeContainer('c');
    await sb.destroy();
    t.pass('removeContainer and destroy() after destroy() resolve: nothing is held');
    t.equal(mountSnapshot(), before, 'nothing mounted');
    t.equal(treeSnapshot(root), tree, 'nothing created');
    t.equal(sb.storages().size, 0);
  });

  t.test('umountBusyTimeoutMs bounds the wait for each unmount, once per call', async (t) => {
    const root = scratchDir(t);
    for (const timeout of [100, 500]) {
      const sb = new Sandbox({ allowedRoots: [root], umountBusyTimeoutMs: timeout });
      const p = join(root, `busy${timeout}`);
      await sb.addStorages([tmpfs(p)], { containerId: 'c' });
      const fd = openSync(join(p, 'f'), 'w');
      let started = performance.now();
      await t.rejects(sb.removeContainer('c'), { code: 'EBUSY' });
      let took = performance.now() - started;
      t.ok(
        took >= timeout * 0.9 && took < timeout * 1.5 + 100,
        `removeContainer waited ${took.toFixed(0)} ms for ${timeout} ms`,
      );
      // A later call retries the pending one: again one bounded wait, not two.
      started = performance.now();
      await sb.removeContainer('other');
      took = performance.now() - started;
      t.ok(took >= timeout * 0.9 && took < timeout * 1.5 + 100, `the retry waited ${took.toFixed(0)} ms`);
      t.equal(sb.storages().get(p)?.cleanupPending, true);
      closeSync(fd);
      await sb.destroy();
      t.equal(mountAt(p), undefined);
    }
  });

  t.test('one allowed-root rule: the innermost root, for validation and for the mount', async (t) => {
    const dir = scratchDir(t);
    const real = join(dir, 'real');
    mkdirSync(real);
    // An allowed root that is itself a symlink (as /var/run -> /run): placed beneath it, the
    // mount must be resolved beneath it too, not beneath the outer root (where the symlink is on the way).
    symlinkSync(real, join(dir, 'kata'));
    const before = mountSnapshot();
    for (const roots of [
      [dir, join(dir, 'kata')],
      [join(dir, 'kata'), dir],
    ]) {
      const sb = new Sandbox({ allowedRoots: roots });
      const p = join(dir, 'kata', 'x');
      t.same(await sb.addStorages([tmpfs(p)], { containerId: 'c' }), [p], roots.join(' '));
      t.equal(mountAt(join(real, 'x'))?.fstype, 'tmpfs', 'mounted where validation placed it');
      await sb.removeContainer('c');
      t.equal(mountAt(join(real, 'x')), undefined);
      t.notOk(existsSync(join(real, 'x')));
    }
    t.equal(mountSnapshot(), before);
  });
});
