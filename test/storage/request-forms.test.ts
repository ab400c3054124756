// Fields in the forms real clients send them: a mount point with Kata's trailing '/', one field
// under two names, KEP-3857's `rro` in place of `ro`, relative OCI destinations, and uint64 fields
// JSON numbers cannot hold. Each right value is mounted (or planned) for real; each wrong one is
// refused with a typed error and nothing changes (mountinfo and the tree, before and after).
import t from 'tap';
import { mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, newMountApiSupport, normalizeStorage, type MountApi, type StorageInput } from '../../lib/index';
import { planContainer, type OciSpec, type RuntimeSettings, type ShareAction } from '../../lib/runtime/index';
import { attachLoop } from '../helpers/loop';
import { cannotMount, mountAt, mountSnapshot, scratchDir } from '../helpers/mountinfo';
import { rejection } from '../helpers/rejection';
import { treeSnapshot } from '../helpers/tree';

const tmpfs = (mountPoint: string): StorageInput => ({
  driver: 'ephemeral',
  source: 'tmpfs',
  fstype: 'tmpfs',
  options: ['size=1m'],
  mountPoint,
});

t.test(
  'a trailing "/" is the same directory; "..", ".", "//" and symlinks stay refused',
  { skip: cannotMount },
  async (t) => {
    const root = scratchDir(t);
    const shared = join(root, 'shared', 'containers');
    const before = mountSnapshot();
    const sandbox = new Sandbox({ allowedRoots: [root] });
    // Kata's form, with the proto field name.
    const kata = {
      driver: 'ephemeral',
      source: 'tmpfs',
      fstype: 'tmpfs',
      options: ['size=1m'],
      mount_point: `${shared}/`,
    };
    const [path] = await sandbox.addStorages([kata], { containerId: 'a' });
    t.equal(path, shared, 'the returned path is the normalized form');
    t.same([...sandbox.storages().keys()], [shared], 'and so is the table key');
    t.equal(mountAt(shared)!.fstype, 'tmpfs', 'mounted at the directory');
    // The same directory without the '/' is the same storage, counted, not mounted twice.
    t.same(await sandbox.addStorages([tmpfs(shared)], { containerId: 'b' }), [shared]);
    t.equal(sandbox.refcount(shared), 2);
    const mounted = mountSnapshot();
    t.equal(mounted.split('\n').filter((l) => l.startsWith(`${shared} `)).length, 1, 'one mount');
    t.same(normalizeStorage(kata).mountPoint, shared);

    const outside = scratchDir(t);
    symlinkSync(outside, join(root, 'link'));
    mkdirSync(join(root, 'd'));
    const tree = treeSnapshot(root);
    for (const bad of [
      `${root}/d/../x/`,
      `${root}/./x/`,
      `${root}//x/`,
      `${root}/x//`,
      `${root}/link/x/`,
      `${root}/link/`,
    ]) {
      const err = await rejection(sandbox.addStorages([tmpfs(bad)], { containerId: 'c' }));
      t.match(err, { code: 'ERR_INVALID_STORAGE', field: 'mountPoint' }, `${bad}: ${err.message}`);
      t.equal(mountSnapshot(), mounted, `${bad}: mountinfo unchanged`);
      t.equal(treeSnapshot(root), tree, `${bad}: tree unchanged`);
    }
    await sandbox.removeContainer('a');
    await sandbox.removeContainer('b');
    t.equal(mountSnapshot(), before, 'released');
  },
);

t.test(
  'one field under two names is refused, naming both, before anything is touched',
  { skip: cannotMount },
  async (t) => {
    const root = scratchDir(t);
    const a = join(root, 'a');
    const b = join(root, 'b');
    const ok = tmpfs(join(root, 'first'));
    const base = { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: ['size=1m'] };
    const cases: [string, Record<string, unknown>, string, string][] = [
      ['mountPoint + mount_point', { ...base, mountPoint: a, mount_point: b }, 'mountPoint', 'mount_point'],
      [
        'driverOptions + driver_options',
        { ...base, mountPoint: a, driverOptions: [], driver_options: ['x'] },
        'driverOptions',
        'driver_options',
      ],
      [
        'fsGroup + fs_group',
        { ...base, mountPoint: a, fsGroup: { groupId: 1 }, fs_group: { group_id: 2 } },
        'fsGroup',
        'fs_group',
      ],
      [
        'groupId + group_id',
        { ...base, mountPoint: a, fsGroup: { groupId: 1, group_id: 2 } },
        'fsGroup.groupId',
        'fsGroup.group_id',
      ],
      [
        'groupChangePolicy + group_change_policy',
        { ...base, mount_point: a, fs_group: { group_id: 1, groupChangePolicy: 'Always', group_change_policy: 1 } },
        'fsGroup.groupChangePolicy',
        'fsGroup.group_change_policy',
      ],
    ];
    const sandbox = new Sandbox({ allowedRoots: [root] });
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    for (const [name, storage, first, second] of cases) {
      t.throws(() => normalizeStorage(storage), { code: 'ERR_INVALID_STORAGE', field: second }, name);
      // A good storage before it in the same request is not mounted either.
      const err = await rejection(sandbox.addStorages([ok, storage as StorageInput], { containerId: 'c' }));
      t.match(err, { code: 'ERR_INVALID_STORAGE', name: 'StorageError' }, name);
      t.ok(err.message.includes(`'${first}'`) && err.message.includes(`'${second}'`), `${name}: ${err.message}`);
      t.equal(mountSnapshot(), before, `${name}: mountinfo unchanged`);
      t.equal(treeSnapshot(root), tree, `${name}: tree unchanged`);
    }
    // Different fields under different namings are one storage, each read once.
    const mixed = { ...base, mount_point: a, fsGroup: { group_id: 3000, groupChangePolicy: 'OnRootMismatch' } };
    t.same(normalizeStorage(mixed), {
      ...base,
      mountPoint: a,
      fsGroup: { groupId: 3000, groupChangePolicy: 'OnRootMismatch' },
    });
    // An absent (null) twin is no second value.
    t.equal(normalizeStorage({ ...base, mountPoint: a, mount_point: null }).mountPoint, a);
  },
);

// ---- rro ---------------------------------------------------------------------------------------

const apis: MountApi[] = newMountApiSupport().complete ? ['new', 'legacy'] : ['legacy'];

t.test(
  'rro is read-only everywhere: the planned block storage mounts its superblock ro',
  { skip: cannotMount },
  async (t) => {
    for (const mountApi of apis) {
      await t.test(`mount API ${mountApi}`, async (t) => {
        const root = scratchDir(t);
        const disk = attachLoop(t, { ext4: true, sizeMb: 16 });
        // A ReadOnlyMany PVC of a KEP-3857 pod: CRI puts rro where ro would be.
        const spec: OciSpec = {
          root: { path: '/rootfs' },
          mounts: [{ destination: '/data', type: 'bind', source: disk, options: ['rbind', 'rprivate', 'rro'] }],
        };
        const settings: RuntimeSettings = {
          guestSharedDir: join(root, 'shared'),
          guestSandboxDir: join(root, 'sandbox'),
          blockDeviceDriver: 'virtio-mmio',
          blockDevices: { [disk]: { virtPath: disk, fstype: 'ext4', fsGroup: { groupId: 3000 } } },
        };
        const p = planContainer('c', spec, settings);
        const [storage] = p.storages;
        t.same(storage!.options, ['ro'], 'the storage asks for ro (the recursive word is the plain one here)');
        t.same(
          p.hostActions.find((a) => a.action === 'attach-block-device'),
          {
            action: 'attach-block-device',
            source: disk,
            driver: 'mmioblk',
            address: disk,
            readonly: true,
            for: 'mounts[0]',
          },
          'the disk is attached read-only',
        );
        t.same(p.spec.mounts![0]!.options, ['rbind', 'rprivate', 'rro'], 'the container bind keeps rro');

        const before = mountSnapshot();
        const sandbox = new Sandbox({ allowedRoots: [root], mountApi });
        const [path] = await sandbox.addStorages(p.storages, { containerId: 'c' });
        const m = mountAt(path!)!;
        t.ok(m.superOptions.includes('ro'), `superblock read-only: ${m.superOptions}`);
        t.ok(m.mountOptions.includes('ro'), `mount read-only: ${m.mountOptions}`);
        t.throws(() => writeFileSync(join(path!, 'x'), 'x'), { code: 'EROFS' });
        t.equal(statSync(path!).gid, 0, 'fsGroup is skipped on a read-only volume, as Kubernetes does');
        await sandbox.removeContainer('c');
        t.equal(mountSnapshot(), before);

        // The same words given straight to the Sandbox: rro alone makes the superblock read-only too.
        const direct = await sandbox.addStorages(
          [{ ...p.storages[0]!, options: ['rro'], fsGroup: { groupId: 3000 } }],
          { containerId: 'd' },
        );
        t.ok(mountAt(direct[0]!)!.superOptions.includes('ro'), `rro alone: ${mountAt(direct[0]!)!.superOptions}`);
        t.equal(statSync(direct[0]!).gid, 0, 'and its ownership is left alone');
        await sandbox.removeContainer('d');
        t.equal(mountSnapshot(), before);
      });
    }
  },
);

t.test('rro shares a hostPath, a secret and a configmap read-only', async (t) => {
  const pod = '/var/lib/kubelet/pods/u/volumes';
  const mounts = [
    { destination: '/host', type: 'bind', source: '/srv/host', options: ['rbind', 'rprivate', 'rro'] },
    { destination: '/secret', type: 'bind', source: `${pod}/kubernetes.io~secret/s`, options: ['rbind', 'rro'] },
    { destination: '/cm', type: 'bind', source: `${pod}/kubernetes.io~configmap/c`, options: ['rro', 'rw'] },
    { destination: '/rw', type: 'bind', source: '/srv/rw', options: ['rbind', 'ro', 'rw'] },
  ];
  const p = planContainer('c', { root: { path: '/rootfs' }, mounts });
  const readonly = (i: number): boolean =>
    (p.hostActions.find((a) => a.for === `mounts[${i}]`) as ShareAction).readonly;
  t.equal(readonly(0), true, 'hostPath');
  t.equal(readonly(1), true, 'secret');
  t.equal(readonly(2), true, 'rw after rro does not undo it (runc applies rro last)');
  t.equal(readonly(3), false, 'rw after ro does');
});

// ---- relative destinations --------------------------------------------------------------------

t.test('relative destinations are relative to the container’s "/"; dev/shm gets /dev/shm’s handling', async (t) => {
  const spec: OciSpec = {
    root: { path: '/rootfs' },
    mounts: [
      { destination: 'data', type: 'bind', source: '/srv/data', options: ['rbind', 'rw'] },
      { destination: 'dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'size=65536k'] },
      { destination: 'var/cache/', type: 'bind', source: '/srv/cache', options: ['rbind'] },
    ],
  };
  const withShm = planContainer('c', spec, { shmSize: 1 << 20 });
  t.same(withShm.spec.mounts![1], {
    destination: 'dev/shm',
    type: 'bind',
    source: '/run/kata-containers/sandbox/shm',
    options: ['rbind'],
  });
  const share = withShm.hostActions.find((a) => a.for === 'mounts[0]') as ShareAction;
  t.match(share.guestPath, /\/c-[0-9a-f]{16}-data$/, 'named after the destination as Kata names it');
  t.equal(withShm.spec.mounts![0]!.destination, 'data', 'the spec keeps its own string');
  t.match((withShm.hostActions.find((a) => a.for === 'mounts[2]') as ShareAction).guestPath, /-cache$/);
  const own = planContainer('c', spec);
  t.same(own.spec.mounts![1], {
    destination: 'dev/shm',
    type: 'tmpfs',
    source: 'shm',
    options: ['noexec', 'nosuid', 'nodev', 'mode=1777', `size=${64 * 1024 * 1024}`],
  });
  for (const bad of ['a/../b', '../etc', '']) {
    const s = { root: { path: '/rootfs' }, mounts: [{ destination: bad, type: 'tmpfs', source: 't' }] };
    t.throws(() => planContainer('c', s), { code: 'ERR_INVALID_SPEC', path: 'mounts[0].destination' }, bad);
  }
});

// ---- uint64 fields ----------------------------------------------------------------------------

t.test('hugepageLimits are read where a hugetlbfs volume uses them, uint64s without loss', async (t) => {
  const huge = '/var/lib/kubelet/pods/u/volumes/kubernetes.io~empty-dir/hugepage';
  const settings: RuntimeSettings = {
    guestSandboxDir: '/g/sandbox',
    volumes: { [huge]: { fstype: 'hugetlbfs', options: ['rw', 'pagesize=2M'] } },
  };
  const spec = (limits: unknown, withVolume = true): unknown => ({
    root: { path: '/rootfs' },
    mounts: withVolume ? [{ destination: '/hugepages', type: 'bind', source: huge, options: ['rbind'] }] : [],
    linux: { resources: { hugepageLimits: limits } },
  });
  const size = (limits: unknown): string => planContainer('c', spec(limits), settings).storages[0]!.options![0]!;
  // Unused, nothing about them is read: none of these refuses a spec.
  for (const limits of [
    [{ pageSize: '2MB', limit: 9007199254740992 }],
    [{ pageSize: '2MB', limit: -1 }],
    [{ pageSize: 'huge', limit: 'lots' }],
    'not an array',
  ]) {
    t.doesNotThrow(() => planContainer('c', spec(limits, false), settings), JSON.stringify(limits));
  }
  t.equal(size([{ pageSize: '2MB', limit: 4194304 }]), 'pagesize=2097152,size=4194304');
  t.equal(
    size([{ pageSize: '2MB', limit: '9007199254740993' }]),
    'pagesize=2097152,size=9007199254740992',
    'a decimal string (proto3 JSON) is exact, then whole pages',
  );
  t.equal(
    size([{ pageSize: '2MB', limit: 2n ** 63n + 1n }]),
    `pagesize=2097152,size=${2n ** 63n}`,
    'a bigint is exact, then whole pages',
  );
  t.equal(
    size([{ pageSize: '2MB', limit: 9007199254740992 }]),
    'pagesize=2097152,size=9007199254740992',
    '2^53 itself',
  );
  t.equal(
    size([{ pageSize: '2MB', limit: 9223372036854772000 }]),
    'pagesize=2097152,size=9223372036852678656',
    'the runtime-spec example’s limit: at least what JSON.parse kept, in whole pages',
  );
  t.equal(
    size([{ pageSize: '2MB', limit: 1e30 }]),
    `pagesize=2097152,size=${((2n ** 64n - 1n) / 2097152n) * 2097152n}`,
    'past uint64: the largest uint64, in whole pages',
  );
  t.equal(
    size([
      { pageSize: '1GB', limit: 'not read' },
      { pageSize: '2MB', limit: 2097152 },
      { pageSize: '2MB', limit: 0 },
    ]),
    'pagesize=2097152,size=2097152',
    'the last non-zero limit of the page size; another page size’s limit is not read',
  );
  for (const [limit, why] of [
    [-1, 'negative'],
    [1.5, 'fractional'],
    ['12abc', 'not decimal'],
    [2n ** 64n, 'past uint64 as a bigint'],
    ['18446744073709551616', 'past uint64 as a string'],
    [null, 'missing'],
  ] as const) {
    t.throws(
      () => planContainer('c', spec([{ pageSize: '2MB', limit }]), settings),
      { code: 'ERR_INVALID_SPEC', path: 'linux.resources.hugepageLimits[0].limit' },
      why,
    );
  }
  t.throws(() => planContainer('c', spec('x'), settings), {
    code: 'ERR_INVALID_SPEC',
    path: 'linux.resources.hugepageLimits',
  });
  t.throws(() => planContainer('c', spec([42]), settings), {
    code: 'ERR_INVALID_SPEC',
    path: 'linux.resources.hugepageLimits[0].pageSize',
  });
  t.throws(() => planContainer('c', spec([{ pageSize: 'big', limit: 1 }]), settings), {
    code: 'ERR_INVALID_SPEC',
    path: 'linux.resources.hugepageLimits[0].pageSize',
  });
});

t.test(
  'one trailing slash is the same directory wherever the sandbox takes a path',
  { skip: cannotMount },
  async (t) => {
    const root = scratchDir(t, 'kata-storage-slash-');
    const sandbox = new Sandbox({ allowedRoots: [`${root}/`] });
    t.same(sandbox.allowedRoots, [root], 'an allowed root keeps the form without it');
    const point = join(root, 'e');
    const before = mountSnapshot();
    try {
      t.same(
        await sandbox.addStorages([{ driver: 'local', source: 'local', fstype: 'local', mountPoint: `${point}/` }]),
        [point],
      );
      t.equal(sandbox.refcount(`${point}/`), 1, 'refcount');
      t.equal(sandbox.setSandboxStorage(`${point}/`), false, 'setSandboxStorage finds the entry');
      t.equal(sandbox.refcount(point), 2);
      t.equal(sandbox.unsetSandboxStorage(`${point}/`), false, 'unsetSandboxStorage');
      t.equal(await sandbox.unsetAndRemoveSandboxStorage(`${point}/`), true, 'unsetAndRemoveSandboxStorage');
      t.equal(sandbox.storages().size, 0);
    } finally {
      await sandbox.destroy();
    }
    t.equal(mountSnapshot(), before);
    t.throws(() => new Sandbox({ allowedRoots: [`${root}//`] }), { code: 'ERR_INVALID_ARG_VALUE', message: /"\/\/"/ });
  },
);
