import t from 'tap';
import {
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  Sandbox,
  effectiveMountApi,
  mountSync,
  umountSync,
  type MountEvent,
  type Storage,
  type UmountEvent,
} from '../../lib/index';
import { cannotMount, mountAt, mountSnapshot, scratchDir } from '../helpers/mountinfo';
import { unusedLoopNumber } from '../helpers/loop';
import { listen } from '../helpers/events';
import { treeSnapshot } from '../helpers/tree';

const tmpfs = (mountPoint: string, extra: Partial<Storage> = {}): Storage => ({
  driver: 'ephemeral',
  source: 'tmpfs',
  fstype: 'tmpfs',
  options: ['size=1m'],
  mountPoint,
  ...extra,
});

const HUGEPAGES = '/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages';

t.test('drivers for real', { skip: cannotMount }, async (t) => {
  t.test(
    'hugetlbfs allocates its pages through sysfs and mounts',
    { skip: !existsSync(HUGEPAGES) && 'no 2 MiB hugepages here' },
    async (t) => {
      const previous = readFileSync(HUGEPAGES, 'utf8').trim();
      t.teardown(() => writeFileSync(HUGEPAGES, previous));
      const root = scratchDir(t);
      const sb = new Sandbox({ allowedRoots: [root] });
      const p = join(root, 'hugepages');
      await sb.addStorages(
        [
          {
            driver: 'ephemeral',
            source: 'nodev',
            fstype: 'hugetlbfs',
            options: ['pagesize=2097152,size=4194304'],
            mountPoint: p,
          },
        ],
        {
          containerId: 'c',
        },
      );
      t.ok(Number(readFileSync(HUGEPAGES, 'utf8')) >= 2, 'at least the 2 pages asked for');
      const m = mountAt(p)!;
      t.equal(m.fstype, 'hugetlbfs');
      t.ok(m.superOptions.includes('pagesize=2M'), `${m.superOptions}`);
      await sb.removeContainer('c');
      t.equal(mountAt(p), undefined);
    },
  );

  t.test('hugetlbfs: a sysfs that cannot be read is a clear error, nothing mounted', async (t) => {
    const root = scratchDir(t);
    const sys = scratchDir(t, 'kata-storage-sys-');
    mkdirSync(join(sys, 'kernel', 'mm', 'hugepages'), { recursive: true });
    const sb = new Sandbox({ allowedRoots: [root], sysfsRoot: sys });
    const before = mountSnapshot();
    const s: Storage = {
      driver: 'ephemeral',
      source: 'nodev',
      fstype: 'hugetlbfs',
      options: ['pagesize=2097152', 'size=2097152'],
      mountPoint: join(root, 'h'),
    };
    await t.rejects(sb.addStorages([tmpfs(join(root, 'first')), s]), {
      code: 'ENOENT',
      syscall: 'open',
      path: join(sys, 'kernel/mm/hugepages/hugepages-2048kB/nr_hugepages'),
    });
    t.equal(mountSnapshot(), before);
  });

  t.test('fsGroup: recursive chgrp, bits, setgid on dirs, symlinks skipped; OnRootMismatch short-cut', async (t) => {
    const root = scratchDir(t);
    const outside = scratchDir(t);
    const shared = join(root, 'shared');
    mkdirSync(shared);
    // The guest pre-mounted the shared filesystem: accepted as is, and never unmounted by us. No
    // virtiofs here, so the share is a tmpfs and the request names that type.
    mountSync('kataShared', shared, 'tmpfs', ['size=1m']);
    t.teardown(() => umountSync(shared));
    mkdirSync(join(shared, 'd'), { mode: 0o700 });
    writeFileSync(join(shared, 'd', 'f'), 'x', { mode: 0o600 });
    writeFileSync(join(outside, 'target'), 'x', { mode: 0o600 });
    symlinkSync(join(outside, 'target'), join(shared, 'link'));
    const storage: Storage = {
      driver: 'virtio-fs',
      source: 'kataShared',
      fstype: 'tmpfs',
      mountPoint: shared,
      fsGroup: { groupId: 4321 },
    };
    const sb = new Sandbox({ allowedRoots: [root] });
    await sb.addStorages([storage], { containerId: 'a' });
    t.equal(statSync(join(shared, 'd', 'f')).gid, 4321);
    t.equal(statSync(join(shared, 'd', 'f')).mode & 0o7777, 0o660, 'file: rw for user and group');
    t.equal(statSync(join(shared, 'd')).mode & 0o7777, 0o2770, 'dir: rwx + setgid');
    t.equal(statSync(shared).gid, 4321);
    t.equal(lstatSync(join(shared, 'link')).gid, 0, 'the symlink itself is skipped');
    t.equal(statSync(join(outside, 'target')).gid, 0, 'its target is not touched');
    t.equal(statSync(join(outside, 'target')).mode & 0o777, 0o600);
    await sb.removeContainer('a');
    t.ok(mountAt(shared), 'a pre-mounted share is not ours to unmount');

    chownSync(join(shared, 'd', 'f'), 0, 0);
    await sb.addStorages([{ ...storage, fsGroup: { groupId: 4321, groupChangePolicy: 'OnRootMismatch' } }], {
      containerId: 'b',
    });
    t.equal(statSync(join(shared, 'd', 'f')).gid, 0, 'OnRootMismatch: root already right, nothing walked');
    await sb.removeContainer('b');
    await sb.addStorages([{ ...storage, fsGroup: { groupId: 4321, groupChangePolicy: 'Always' } }], {
      containerId: 'c',
    });
    t.equal(statSync(join(shared, 'd', 'f')).gid, 4321, 'Always walks again');
    await sb.removeContainer('c');

    writeFileSync(join(shared, 'ro'), 'x', { mode: 0o600 });
    await sb.addStorages([{ ...storage, options: ['ro'], fsGroup: { groupId: 99 } }], { containerId: 'd' });
    t.equal(statSync(join(shared, 'ro')).mode & 0o777, 0o640, 'read-only adds only r for the group');
    await sb.removeContainer('d');
  });

  t.test('ephemeral fsgid= applies after the mount; fsGroup on a fresh tmpfs', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const a = join(root, 'a');
    const b = join(root, 'b');
    await sb.addStorages(
      [tmpfs(a, { options: ['size=1m', 'mode=0750', 'fsgid=2000'] }), tmpfs(b, { fsGroup: { groupId: 3000 } })],
      { containerId: 'c' },
    );
    t.equal(statSync(a).gid, 2000);
    t.equal(statSync(a).mode & 0o7777, 0o2750);
    t.notOk(
      mountAt(a)!.superOptions.some((o) => o.startsWith('fsgid')),
      'fsgid is not passed to the kernel',
    );
    t.equal(statSync(b).gid, 3000);
    t.equal(statSync(b).mode & 0o2000, 0o2000);
    await sb.removeContainer('c');
  });

  t.test('shared storages survive their last container until destroy()', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const p = join(root, 'shm');
    await sb.addStorages([tmpfs(p, { shared: true })], { containerId: 'a' });
    await sb.removeContainer('a');
    t.ok(mountAt(p), 'still mounted');
    t.same(sb.storages().get(p), { refcount: 0, driver: 'ephemeral', shared: true, cleanupPending: false });
    await sb.addStorages([tmpfs(p, { shared: true })], { containerId: 'b' });
    t.equal(sb.refcount(p), 1, 'reused');
    await sb.destroy();
    t.equal(mountAt(p), undefined);
    t.equal(sb.storages().size, 0);
  });

  t.test("Kata's set/unset/unsetAndRemove/refcount", async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const bare = join(root, 'bare');
    t.equal(sb.setSandboxStorage(bare), true, 'new entry');
    t.equal(sb.setSandboxStorage(bare), false, 'existing entry');
    t.equal(sb.refcount(bare), 2);
    t.equal(sb.storages().get(bare)?.driver, '');
    t.equal(sb.unsetSandboxStorage(bare), false);
    t.equal(sb.unsetSandboxStorage(bare), true, 'reached zero');
    t.equal(sb.storages().has(bare), false, 'nothing to clean: forgotten');
    t.throws(() => sb.unsetSandboxStorage(bare), { code: 'ERR_STORAGE_NOT_FOUND', value: bare });
    await t.rejects(sb.unsetAndRemoveSandboxStorage(bare), { code: 'ERR_STORAGE_NOT_FOUND' });
    t.throws(() => sb.setSandboxStorage(5 as never), { code: 'ERR_INVALID_ARG_TYPE' });

    const p = join(root, 'vol');
    await sb.addStorages([tmpfs(p)], { containerId: 'a' });
    t.equal(sb.setSandboxStorage(p), false, 'a reference on a mounted storage');
    await sb.removeContainer('a');
    t.ok(mountAt(p), 'still held by the extra reference');
    t.equal(await sb.unsetAndRemoveSandboxStorage(p), true);
    t.equal(mountAt(p), undefined, 'unmounted');
    t.notOk(existsSync(p), 'and removed');

    await sb.addStorages([tmpfs(p)]);
    t.equal(sb.unsetSandboxStorage(p), true);
    t.ok(mountAt(p), 'unset alone does not unmount...');
    t.equal(sb.storages().get(p)?.cleanupPending, true, '...but the entry stays marked, not leaked');
    await sb.destroy();
    t.equal(mountAt(p), undefined);
  });

  t.test('local is removed on last release, never by deleting into a mount below it', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const p = join(root, 'empty');
    await sb.addStorages([{ driver: 'local', source: 'local', fstype: 'local', mountPoint: p }], { containerId: 'c' });
    mkdirSync(join(p, 'sub'));
    writeFileSync(join(p, 'sub', 'file'), 'data');
    mkdirSync(join(p, 'mnt'));
    mountSync('tmpfs', join(p, 'mnt'), 'tmpfs', ['size=64k']);
    writeFileSync(join(p, 'mnt', 'precious'), 'not ours');
    await t.rejects(sb.removeContainer('c'), { code: 'EBUSY', syscall: 'rmdir', path: join(p, 'mnt') });
    t.equal(readFileSync(join(p, 'sub', 'file'), 'utf8'), 'data', 'nothing deleted');
    t.equal(readFileSync(join(p, 'mnt', 'precious'), 'utf8'), 'not ours');
    t.equal(sb.storages().get(p)?.cleanupPending, true);
    umountSync(join(p, 'mnt'));
    await sb.destroy();
    t.notOk(existsSync(p), 'removed with its content once nothing is mounted below');
  });

  t.test('overlayfs creates the upper/work it is asked for and removes them', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const lower = join(root, 'lower');
    mkdirSync(lower);
    writeFileSync(join(lower, 'from-lower'), 'l');
    const tree = treeSnapshot(root);
    const rootfs = join(root, 'c1', 'rootfs');
    const s: Storage = {
      driver: 'overlayfs',
      source: 'overlay',
      fstype: 'overlay',
      options: [`lowerdir=${lower}`, 'io.katacontainers.fs-opt.overlay-rw'],
      mountPoint: rootfs,
    };
    await sb.addStorages([s], { containerId: 'c1' });
    const m = mountAt(rootfs)!;
    t.equal(m.fstype, 'overlay');
    t.ok(m.superOptions.includes(`upperdir=${join(root, 'c1', 'upper')}`), `${m.superOptions}`);
    t.equal(readFileSync(join(rootfs, 'from-lower'), 'utf8'), 'l');
    writeFileSync(join(rootfs, 'new'), 'n');
    t.equal(readFileSync(join(root, 'c1', 'upper', 'new'), 'utf8'), 'n', 'writes land in the upper dir');
    await sb.removeContainer('c1');
    t.equal(mountAt(rootfs), undefined);
    t.equal(treeSnapshot(root), tree, 'upper, work and the mount point are gone');
  });

  t.test('virtio-fs and 9p mount their tag (no such device here: the error, and nothing left)', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const mounts = listen<MountEvent>(t, 'kata-storage:mount');
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    // The new mount API fails at fsopen (no such filesystem) or fsconfig (no such tag).
    const syscall = effectiveMountApi() === 'new' ? /^(fsopen|fsconfig)$/ : 'mount';
    await t.rejects(
      sb.addStorages([
        { driver: 'virtio-fs', source: 'noSuchTag', fstype: 'virtiofs', options: ['dax'], mountPoint: join(root, 'v') },
      ]),
      {
        name: 'Error',
        syscall,
      },
    );
    await t.rejects(
      sb.addStorages([{ driver: '9p', source: 'noSuchTag', fstype: '9p', mountPoint: join(root, 'n') }]),
      { name: 'Error', syscall },
    );
    t.same(mounts[0]!.options, ['dax']);
    t.equal(mounts[0]!.fstype, 'virtiofs');
    t.ok(mounts[0]!.error, 'the failure is published too');
    t.same(mounts[1]!.options, ['trans=virtio'], '9p gets trans=virtio');
    t.equal(mountSnapshot(), before);
    t.equal(treeSnapshot(root), tree);
  });

  t.test('abort: before the request and in the middle of a device wait', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root], hotplugTimeoutMs: 30000 });
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const ac = new AbortController();
    ac.abort();
    await t.rejects(sb.addStorages([tmpfs(join(root, 'x'))], { signal: ac.signal }), { code: 'ABORT_ERR' });
    const ac2 = new AbortController();
    const started = Date.now();
    const p = sb.addStorages(
      [
        tmpfs(join(root, 'first')),
        { driver: 'mmioblk', source: `/dev/loop${unusedLoopNumber()}`, fstype: 'ext4', mountPoint: join(root, 'disk') },
      ],
      { signal: ac2.signal, containerId: 'c' },
    );
    setTimeout(() => ac2.abort(), 200);
    await t.rejects(p, { code: 'ABORT_ERR', name: 'AbortError' });
    t.ok(Date.now() - started < 5000, 'did not wait for the 30 s timeout');
    t.equal(mountSnapshot(), before, 'the first storage was rolled back');
    t.equal(treeSnapshot(root), tree);
  });

  t.test('umount events carry the reason and the duration', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const umounts = listen<UmountEvent>(t, 'kata-storage:umount');
    const p = join(root, 'x');
    await sb.addStorages([tmpfs(p)], { containerId: 'c' });
    await sb.removeContainer('c');
    t.equal(umounts.length, 1);
    t.equal(umounts[0]!.mountPoint, p);
    t.equal(umounts[0]!.reason, 'release');
    t.equal(umounts[0]!.driver, 'ephemeral');
    t.ok(umounts[0]!.durationMs >= 0 && umounts[0]!.durationMs < 5000);
  });
});
