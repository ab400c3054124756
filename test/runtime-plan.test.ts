// The runtime planner against the Kata runtime's own test cases (virtcontainers kata_agent_test.go,
// kata_agent_linux_test.go, container_test.go, mount_test.go; runtime-rs volume/utils.rs): their
// inputs and expected outputs are the facts these tables restate.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  planContainer,
  planSandbox,
  rollbackHostActions,
  virtioFsUsesDax,
  DEFAULT_SHM_SIZE,
  type OciMount,
  type OciSpec,
  type RuntimeSettings,
} from '../lib/runtime/index';
import { isSystemMount, kubernetesVolume } from '../lib/runtime/classify';
import { cleanPath } from '../lib/runtime/paths';
import { ramBytes } from '../lib/runtime/hugepages';
import { base64Url } from '../lib/runtime/block';
import { defaultRegistry, normalizeStorage, parseMountOptions } from '../lib/index';

const SHARED = '/run/kata-containers/shared/containers';
const SANDBOX = '/run/kata-containers/sandbox';
const EPHEMERAL = `${SANDBOX}/ephemeral`;
const STORAGE = `${SANDBOX}/storage`;
const POD = '/var/lib/kubelet/pods/5f0861a0-a987-4a3a-bb0f-1058ddb9678f/volumes';

const spec = (...mounts: OciMount[]): OciSpec => ({ ociVersion: '1.0.2', root: { path: '/bundle/rootfs' }, mounts });
const bindMount = (destination: string, source: string, options = ['rbind', 'rprivate', 'rw']): OciMount => ({
  destination,
  type: 'bind',
  source,
  options,
});

t.test('setupStorages: the shared filesystem and the sandbox shm', async (t) => {
  // kata_agent.go setupStorages: dax only when the cache mode is not never/metadata and the
  // DAX window (virtio_fs_cache_size) is not 0.
  const dax: [RuntimeSettings['virtioFsCache'], number, boolean][] = [
    ['never', 1024, false],
    ['metadata', 1024, false],
    ['auto', 0, false],
    ['always', 0, false],
    ['auto', 1024, true],
    ['always', 8192, true],
  ];
  for (const [cache, size, expected] of dax) {
    const { storages } = planSandbox({ virtioFsCache: cache, virtioFsCacheSize: size });
    t.same(
      storages,
      [
        {
          driver: 'virtio-fs',
          source: 'kataShared',
          fstype: 'virtiofs',
          options: expected ? ['dax'] : [],
          mountPoint: `${SHARED}/`,
        },
      ],
      `${cache}, ${size} MiB`,
    );
    t.equal(virtioFsUsesDax({ virtioFsCache: cache!, virtioFsCacheSize: size }), expected);
  }
  // The default is Kata's: cache auto, no DAX window.
  t.same(planSandbox().storages[0]!.options, []);
  t.same(planSandbox({ sharedFs: 'virtio-9p' }).storages, [
    {
      driver: '9p',
      source: 'kataShared',
      fstype: '9p',
      options: ['trans=virtio,version=9p2000.L,cache=mmap', 'nodev', 'msize=8192'],
      mountPoint: `${SHARED}/`,
    },
  ]);
  t.same(planSandbox({ sharedFs: 'virtio-9p', msize9p: 512 * 1024 }).storages[0]!.options, [
    'trans=virtio,version=9p2000.L,cache=mmap',
    'nodev',
    'msize=524288',
  ]);
  t.same(planSandbox({ sharedFs: 'none' }).storages, []);
  t.same(planSandbox({ sharedFs: 'none', shmSize: 8192 }).storages, [
    {
      driver: 'ephemeral',
      source: 'shm',
      fstype: 'tmpfs',
      options: ['noexec', 'nosuid', 'nodev', 'mode=1777', 'size=8192'],
      mountPoint: `${SANDBOX}/shm`,
    },
  ]);
  // Kata's runtimes send the share's mount point with a trailing '/' (defaultKataGuestSharedDir).
  t.equal(planSandbox({ guestSharedDir: '/g/shared' }).storages[0]!.mountPoint, '/g/shared/');
});

t.test('handleShm: /dev/shm binds the sandbox shm, or gets its own tmpfs', async (t) => {
  const shm = {
    destination: '/dev/shm',
    type: 'bind',
    source: '/run/containerd/io.containerd.grpc.v1.cri/sandboxes/x/shm',
    options: ['rbind', 'ro'],
  };
  let p = planContainer('c', spec(shm), { shmSize: 8192 });
  t.same(p.spec.mounts, [{ destination: '/dev/shm', type: 'bind', source: `${SANDBOX}/shm`, options: ['rbind'] }]);
  t.same(p.storages, [], 'the sandbox shm is a sandbox storage, not the container’s');
  t.same(
    p.hostActions.filter((a) => a.for !== 'root.path'),
    [],
    'a /dev/shm bind is never shared from the host',
  );
  p = planContainer('c', spec(shm), { shmSize: 0 });
  t.same(p.spec.mounts, [
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['noexec', 'nosuid', 'nodev', 'mode=1777', `size=${DEFAULT_SHM_SIZE}`],
    },
  ]);
  t.equal(DEFAULT_SHM_SIZE, 67108864);
  // An ephemeral /dev/shm is left to handleEphemeralStorage.
  p = planContainer(
    'c',
    spec({ destination: '/dev/shm', type: 'ephemeral', source: '/tmp/TestHandleShm123/001', options: ['rbind'] }),
    { shmSize: 8192 },
  );
  t.same(p.storages, [
    { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: [], mountPoint: `${EPHEMERAL}/001` },
  ]);
  t.same(p.spec.mounts, [{ destination: '/dev/shm', type: 'bind', source: `${EPHEMERAL}/001`, options: ['rbind'] }]);
});

t.test('handleEphemeralStorage and katautils SetEphemeralStorageType', async (t) => {
  // TestHandleEphemeralStorage: the mount point is the ephemeral path + the source's basename.
  let p = planContainer(
    'c',
    spec({ destination: '/e', type: 'ephemeral', source: '/tmp/TestHandleEphemeralStorage42/001' }),
  );
  t.same(p.storages, [
    { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: [], mountPoint: `${EPHEMERAL}/001` },
  ]);
  t.same(p.spec.mounts, [{ destination: '/e', type: 'bind', source: `${EPHEMERAL}/001` }]);
  // kubelet's memory emptyDir: a bind of a host tmpfs becomes ephemeral; a non-root group is
  // passed as fsgid=; the host tmpfs's size= (the sizeLimit) is kept.
  const mem = `${POD}/kubernetes.io~empty-dir/cache`;
  p = planContainer('c', spec(bindMount('/cache', mem)), {
    volumes: { [mem]: { fstype: 'tmpfs', options: ['rw', 'size=65536k'], gid: 2000 } },
  });
  t.same(p.storages, [
    {
      driver: 'ephemeral',
      source: 'tmpfs',
      fstype: 'tmpfs',
      options: ['fsgid=2000', 'size=65536k'],
      mountPoint: `${EPHEMERAL}/cache`,
    },
  ]);
  t.same(p.spec.mounts, [
    { destination: '/cache', type: 'bind', source: `${EPHEMERAL}/cache`, options: ['rbind', 'rprivate', 'rw'] },
  ]);
  t.same(
    p.hostActions.map((a) => a.for),
    ['root.path'],
    'nothing of an ephemeral volume is shared',
  );
});

t.test('handleLocalStorage: disk emptyDirs are directories in the guest', async (t) => {
  // TestHandleLocalStorage: <shared>/<sandbox id>/<rootfs suffix>/local/<basename>, mode 0777.
  let p = planContainer(
    'c',
    spec({ destination: '/l', type: 'local', source: '/tmp/TestHandleLocalStorage7/001', options: ['rbind'] }),
    { sandboxId: 'sandboxid' },
  );
  t.same(p.storages, [
    {
      driver: 'local',
      source: 'local',
      fstype: 'local',
      options: ['mode=0777'],
      mountPoint: `${SHARED}/sandboxid/rootfs/local/001`,
    },
  ]);
  t.same(p.spec.mounts, [
    { destination: '/l', type: 'local', source: `${SHARED}/sandboxid/rootfs/local/001`, options: ['rbind'] },
  ]);
  const disk = `${POD}/kubernetes.io~empty-dir/scratch`;
  p = planContainer('app', spec(bindMount('/scratch', disk)), {
    sandboxId: 'pod',
    volumes: { [disk]: { fstype: 'ext4', gid: 3000 } },
  });
  t.same(p.storages, [
    {
      driver: 'local',
      source: 'local',
      fstype: 'local',
      options: ['mode=0777', 'fsgid=3000'],
      mountPoint: `${SHARED}/pod/rootfs/local/scratch`,
    },
  ]);
  t.equal(p.spec.mounts![0]!.type, 'local');
  // The sandbox id defaults to the container id (Kata: the first container is the sandbox).
  t.equal(
    planContainer('pause', spec(bindMount('/scratch', disk))).storages[0]!.mountPoint,
    `${SHARED}/pause/rootfs/local/scratch`,
  );
  // disable_guest_empty_dir: the disk emptyDir is shared from the host instead (runtime-rs's way).
  p = planContainer('app', spec(bindMount('/scratch', disk)), { sandboxId: 'pod', disableGuestEmptyDir: true });
  t.same(p.storages, []);
  t.match(p.hostActions[1], { action: 'share', source: disk, for: 'mounts[0]' });
});

t.test('handleHugepages: hugetlbfs emptyDirs sized by the container’s limit', async (t) => {
  const huge = `${POD}/kubernetes.io~empty-dir/hugepage`;
  const s = spec(bindMount('/hugepages', huge));
  s.linux = {
    resources: {
      hugepageLimits: [
        { pageSize: '2MB', limit: 4194304 },
        { pageSize: '1GB', limit: 0 },
      ],
    },
  };
  const p = planContainer('c', s, {
    volumes: { [huge]: { fstype: 'hugetlbfs', options: ['rw', 'relatime', 'pagesize=2M'] } },
  });
  t.same(p.storages, [
    {
      driver: 'ephemeral',
      source: 'nodev',
      fstype: 'hugetlbfs',
      options: ['pagesize=2097152,size=4194304'],
      mountPoint: `${EPHEMERAL}/hugepage`,
    },
  ]);
  t.same(p.spec.mounts, [
    { destination: '/hugepages', type: 'bind', source: `${EPHEMERAL}/hugepage`, options: ['rbind', 'rprivate', 'rw'] },
  ]);
  // A page size with no limit: Kata would send `size=` and fail in the guest; refused here.
  const none = spec(bindMount('/hugepages', huge));
  t.throws(() => planContainer('c', none, { volumes: { [huge]: { fstype: 'hugetlbfs', options: ['pagesize=1G'] } } }), {
    code: 'ERR_INVALID_SPEC',
    path: 'linux.resources.hugepageLimits',
  });
  t.throws(() => planContainer('c', s, { volumes: { [huge]: { fstype: 'hugetlbfs' } } }), {
    code: 'ERR_INVALID_RUNTIME_SETTINGS',
    path: `volumes["${huge}"].options`,
  });
  for (const [text, bytes] of [
    ['2MB', 2097152],
    ['2M', 2097152],
    ['2Mi', 2097152],
    ['1GB', 1073741824],
    ['1G', 1073741824],
    ['64KB', 65536],
    ['4096', 4096],
  ] as const) {
    t.equal(ramBytes(text), bytes, text);
  }
  t.equal(ramBytes('lots'), undefined);
  t.equal(ramBytes('0MB'), undefined);
});

t.test('mountSharedDirMounts / ShareFile: binds reach the guest through the share', async (t) => {
  const secret = `${POD}/kubernetes.io~secret/super-secret-thing`;
  const base = planContainer('test-ctr', spec(bindMount('/fluffhead/token', secret, ['rbind', 'ro'])), {
    sandboxId: 'foobar',
    watchableBind: false,
  });
  const share = base.hostActions[1]!;
  t.equal(share.action, 'share');
  if (share.action !== 'share') return;
  const name = share.guestPath.slice(SHARED.length + 1);
  t.match(name, /^test-ctr-[0-9a-f]{16}-token$/, 'Kata’s <container>-<16 hex>-<basename of destination>');
  t.equal(share.hostPath, `/run/kata-containers/shared/sandboxes/foobar/mounts/${name}`);
  t.equal(share.readonly, true);
  t.same(base.storages, []);
  t.same(base.spec.mounts, [
    { destination: '/fluffhead/token', type: 'bind', source: share.guestPath, options: ['rbind', 'ro'] },
  ]);
  // TestMountSharedDirMounts (the default, as Kata): one watchable-bind storage whose source is the
  // shared path and mount point <shared>/watchable/<name>; the OCI source is the watchable path.
  const w = planContainer('test-ctr', spec(bindMount('/fluffhead/token', secret, ['rbind', 'ro'])), {
    sandboxId: 'foobar',
  });
  t.same(w.storages, [
    {
      driver: 'watchable-bind',
      source: `${SHARED}/${name}`,
      fstype: 'bind',
      options: ['rbind', 'ro'],
      mountPoint: `${SHARED}/watchable/${name}`,
    },
  ]);
  t.equal(w.spec.mounts![0]!.source, `${SHARED}/watchable/${name}`);
  // 9p shares too; shared_fs=none copies, and a socket cannot be copied so its mount is removed.
  t.equal(planContainer('c', spec(bindMount('/s', secret)), { sharedFs: 'virtio-9p' }).hostActions[1]!.action, 'share');
  const none = planContainer('c', spec(bindMount('/s', secret), bindMount('/run/sock', '/run/app.sock')), {
    sharedFs: 'none',
    volumes: { '/run/app.sock': { kind: 'socket' } },
    blockDevices: { '/bundle/rootfs': { scsiAddr: '0:0', fstype: 'ext4' } },
  });
  t.match(none.hostActions, [{ action: 'attach-block-device' }, { action: 'copy', source: secret, for: 'mounts[0]' }]);
  t.same(
    none.spec.mounts!.map((m) => m.destination),
    ['/s'],
    'removeIgnoredOCIMount dropped the socket',
  );
  // Not shared: system paths, /dev and its device nodes, non-bind mounts. A regular file under
  // /dev is shared (isHostDevice).
  const skip = planContainer(
    'c',
    spec(
      bindMount('/sys/fs/cgroup', '/sys/fs/cgroup'),
      bindMount('/dev/fuse', '/dev/fuse'),
      bindMount('/dev', '/dev'),
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs' },
      bindMount('/etc/hosts', '/dev/termination-log'),
    ),
    {
      volumes: { '/dev/termination-log': { kind: 'file' } },
    },
  );
  t.same(
    skip.hostActions.map((a) => a.for),
    ['root.path', 'mounts[4]'],
  );
  t.same(
    skip.spec.mounts!.slice(0, 4).map((m) => m.source),
    ['/sys/fs/cgroup', '/dev/fuse', '/dev', 'tmpfs'],
  );
  // A disk emptyDir shared with shared_fs=none is copied once for the whole sandbox (Kata's
  // mustCopyEmptyDir: sandbox-<16 hex>-<basename of the source>), whichever container asks.
  const disk = `${POD}/kubernetes.io~empty-dir/scratch`;
  const copy = (cid: string, dest: string) =>
    planContainer(cid, spec(bindMount(dest, disk)), {
      sandboxId: 'pod',
      sharedFs: 'none',
      disableGuestEmptyDir: true,
      blockDevices: { '/bundle/rootfs': { scsiAddr: '0:0', fstype: 'ext4' } },
    });
  const first = copy('a', '/scratch');
  t.match(first.spec.mounts![0]!.source, new RegExp(`^${SHARED}/sandbox-[0-9a-f]{16}-scratch$`));
  t.equal(copy('b', '/other/').spec.mounts![0]!.source, first.spec.mounts![0]!.source, 'one copy for the sandbox');
  t.equal(copy('b', '/other/').spec.mounts![0]!.destination, '/other/', 'the destination is the spec’s own string');
  // Names are a pure function of the input: the same plan twice.
  t.same(
    planContainer('test-ctr', spec(bindMount('/fluffhead/token', secret, ['rbind', 'ro'])), {
      sandboxId: 'foobar',
      watchableBind: false,
    }),
    base,
  );
});

t.test('handleDeviceBlockVolume / createBlkStorageObject: drivers by block_device_driver', async (t) => {
  const dev = '/dev/sdb';
  const plan = (
    mount: Partial<OciMount>,
    driver: RuntimeSettings['blockDeviceDriver'],
    device: NonNullable<RuntimeSettings['blockDevices']>[string],
  ) =>
    planContainer(
      '100',
      spec({ destination: '/DeviceBlock/destination', type: 'bind', source: dev, options: ['bind'], ...mount }),
      {
        blockDeviceDriver: driver,
        blockDevices: { [dev]: device },
      },
    );
  type Row = [
    string,
    Partial<OciMount>,
    RuntimeSettings['blockDeviceDriver'],
    NonNullable<RuntimeSettings['blockDevices']>[string],
    object,
  ];
  const bound = (name: string, driver: Row[2], device: Row[3], storageDriver: string, source: string): Row => [
    name,
    {},
    driver,
    device,
    { driver: storageDriver, source, fstype: 'bind', options: ['bind'] },
  ];
  const rows: Row[] = [
    [
      'pmem wins over the driver: nvdimm, the format, dax',
      {},
      'virtio-blk',
      { pmem: '/dev/pmemtestNvdimmID', pciPath: '04/02', fstype: 'testBlkDriveFormat' },
      { driver: 'nvdimm', source: '/dev/pmemtestNvdimmID', fstype: 'testBlkDriveFormat', options: ['dax'] },
    ],
    [
      'ccw, a read-only bind',
      { options: ['ro'] },
      'virtio-blk-ccw',
      { devNo: 'testDevNo' },
      { driver: 'blk-ccw', source: 'testDevNo', fstype: 'bind', options: ['ro'] },
    ],
    // A device the container binds, on each bus: the storage is a bind of it (fstype bind,
    // options bind) whatever the bus.
    bound('blk, a bind mount: fstype bind, options bind', 'virtio-blk', { pciPath: '03/04' }, 'blk', '03/04'),
    bound('mmio', 'virtio-mmio', { virtPath: 'testVirtPath' }, 'mmioblk', 'testVirtPath'),
    bound('scsi', 'virtio-scsi', { scsiAddr: 'testSCSIAddr' }, 'scsi', 'testSCSIAddr'),
    [
      'direct-assigned ext4, ro',
      { type: 'ext4', options: ['ro'] },
      'virtio-blk',
      { pciPath: '04/05' },
      { driver: 'blk', source: '04/05', fstype: 'ext4', options: ['ro'] },
    ],
    [
      'fsGroup with OnRootMismatch',
      {},
      'virtio-blk',
      { pciPath: '04/02', fsGroup: { groupId: 2000, groupChangePolicy: 'OnRootMismatch' } },
      { driver: 'blk', source: '04/02', fsGroup: { groupId: 2000, groupChangePolicy: 'OnRootMismatch' } },
    ],
    [
      'create a filesystem, discard',
      {},
      'virtio-blk',
      { pciPath: '04/02', fstype: 'ext4', createFilesystem: true, options: ['discard'] },
      { driver: 'blk', source: '04/02', fstype: 'ext4', options: ['discard'], driverOptions: ['create_filesystem'] },
    ],
    [
      'encryption key before create_filesystem',
      {},
      'virtio-blk',
      { pciPath: '04/02', fstype: 'ext4', encryptionKey: 'ephemeral', createFilesystem: true },
      { driverOptions: ['encryption_key=ephemeral', 'create_filesystem'] },
    ],
    [
      'a filesystem drops bind/rbind and propagation (runtime-rs filter_block_storage_options)',
      { options: ['rbind', 'rprivate', 'rw'] },
      'virtio-scsi',
      { scsiAddr: '0:1', fstype: 'xfs' },
      { driver: 'scsi', source: '0:1', fstype: 'xfs', options: ['rw'] },
    ],
    [
      'shared (a block emptyDir outlives its container)',
      {},
      'virtio-blk',
      { pciPath: '02', fstype: 'ext4', shared: true },
      { source: '02', shared: true },
    ],
  ];
  for (const [name, mount, driver, device, expected] of rows) {
    const p = plan(mount, driver, device);
    t.equal(p.storages.length, 1, name);
    t.match(p.storages[0], expected, name);
    // handleBlkOCIMounts: one mount point per device, <storage>/<base64url of the guest address>,
    // and the container binds it.
    const address = (expected as { source?: string }).source ?? '04/02';
    t.equal(p.storages[0]!.mountPoint, `${STORAGE}/${base64Url(address)}`, name);
    t.match(
      p.spec.mounts![0],
      { destination: '/DeviceBlock/destination', type: 'bind', source: p.storages[0]!.mountPoint },
      name,
    );
    t.ok(
      p.spec.mounts![0]!.options!.some((o) => o === 'bind' || o === 'rbind'),
      `${name}: the OCI mount binds`,
    );
    t.match(
      p.hostActions[1],
      {
        action: 'attach-block-device',
        source: dev,
        driver: p.storages[0]!.driver,
        address: p.storages[0]!.source,
        for: 'mounts[0]',
      },
      name,
    );
  }
  t.equal(base64Url('03/04'), 'MDMvMDQ=', 'Go base64.URLEncoding keeps its padding');
  t.equal(base64Url('0:0?'), 'MDowPw==');
  // Two containers (or mounts) of one device: one mount point, reference-counted in the guest.
  const onVirtioBlk = (devices: NonNullable<RuntimeSettings['blockDevices']>, ...mounts: OciMount[]) =>
    planContainer('c', spec(...mounts), { blockDeviceDriver: 'virtio-blk', blockDevices: devices });
  const twice = onVirtioBlk({ [dev]: { pciPath: '02', fstype: 'ext4' } }, bindMount('/a', dev), bindMount('/b', dev));
  t.equal(twice.storages[0]!.mountPoint, twice.storages[1]!.mountPoint);
  // Kata's block-device-file option: the OCI mount keeps only bind words, the storage none of Kata's.
  const file = onVirtioBlk(
    { '/var/disk.img': { pciPath: '05', fstype: 'ext4' } },
    bindMount('/disk', '/var/disk.img', ['bind', 'io.katacontainers.fs-opt.block_device=file']),
  );
  t.same(file.storages[0]!.options, []);
  t.same(file.spec.mounts![0]!.options, ['bind']);
  // An image layer on a block device: a storage first (the rootfs overlays it), removed from the spec.
  const layer = onVirtioBlk(
    { '/dev/sdc': { pciPath: '06', fstype: 'erofs' } },
    bindMount('/layer0', '/dev/sdc', ['bind', 'io.katacontainers.fs-opt.is-layer']),
  );
  t.match(layer.storages, [{ driver: 'blk', source: '06', fstype: 'erofs', mountPoint: '/layer0' }]);
  t.same(layer.spec.mounts, []);
});

t.test('ShareRootFilesystem: shared, or a block device', async (t) => {
  let p = planContainer('c1', { root: { path: 'rootfs' } }, { bundle: '/run/containerd/c1', sandboxId: 'sb' });
  t.equal(p.spec.root!.path, `${SHARED}/c1/rootfs`);
  t.same(p.hostActions, [
    {
      action: 'share',
      source: '/run/containerd/c1/rootfs',
      hostPath: '/run/kata-containers/shared/sandboxes/sb/mounts/c1/rootfs',
      guestPath: `${SHARED}/c1/rootfs`,
      readonly: false,
      for: 'root.path',
    },
  ]);
  t.same(p.storages, []);
  p = planContainer(
    'c1',
    { root: { path: '/dev/mapper/c1' } },
    { blockDeviceDriver: 'virtio-scsi', blockDevices: { '/dev/mapper/c1': { scsiAddr: '0:3', fstype: 'xfs' } } },
  );
  t.same(p.storages, [
    { driver: 'scsi', source: '0:3', fstype: 'xfs', options: ['nouuid'], mountPoint: `${SHARED}/c1` },
  ]);
  t.equal(p.spec.root!.path, `${SHARED}/c1/rootfs`);
  t.match(p.hostActions, [
    { action: 'attach-block-device', source: '/dev/mapper/c1', driver: 'scsi', address: '0:3', for: 'root.path' },
  ]);
  t.throws(
    () =>
      planContainer(
        'c1',
        { root: { path: '/r' } },
        { blockDeviceDriver: 'nvdimm', blockDevices: { '/r': { pmem: '/dev/pmem0', fstype: 'ext4' } } },
      ),
    { code: 'ERR_INVALID_RUNTIME_SETTINGS', path: 'blockDevices["/r"]' },
  );
  t.throws(() => planContainer('c1', { root: { path: '/r' } }, { blockDevices: { '/r': { scsiAddr: '0:0' } } }), {
    code: 'ERR_INVALID_RUNTIME_SETTINGS',
    path: 'blockDevices["/r"].fstype',
  });
  t.throws(() => planContainer('c1', { root: { path: '/r' } }, { sharedFs: 'none' }), {
    code: 'ERR_INVALID_SPEC',
    path: 'root.path',
  });
});

t.test('isSystemMount, Kubernetes volume paths', async (t) => {
  // TestIsSystemMount
  const rows: [string, boolean][] = [
    ['/sys', true],
    ['/sys/', true],
    ['/sys//', true],
    ['/sys/fs', true],
    ['/sys/fs/', true],
    ['/sys/fs/cgroup', true],
    ['/sysfoo', false],
    ['/home', false],
    ['/dev/block/', false],
    ['/mnt/dev/foo', false],
    ['/../sys', true],
    ['/../sys/', true],
    ['/../sys/fs/cgroup', true],
    ['/../sysfoo', false],
    ['/proc/self', true],
  ];
  for (const [p, expected] of rows) t.equal(isSystemMount(p), expected, p);
  t.equal(cleanPath('/a//b/'), '/a/b');
  t.equal(cleanPath('/'), '/');
  // TestIsEmtpyDir / TestIsConfigMap / TestIsSecret: the kind is the second-to-last element.
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~empty-dir/foobar`), 'empty-dir');
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~empty-dir/foobar/bazzzzz`), undefined);
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~configmap/config`), 'configmap');
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~secret`), undefined);
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~secret/sweet-token`), 'secret');
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~secret/sweet-token-dir/whoops`), undefined);
});

t.test('removeIgnoredOCIMount and replaceOCIMountSource leave everything else alone', async (t) => {
  const input: OciSpec = {
    ociVersion: '1.0.2',
    process: { args: ['sh'] },
    root: { path: '/b/rootfs', readonly: true },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/layer', type: 'overlay', source: 'overlay', options: ['io.katacontainers.fs-opt.is-layer'] },
      {
        destination: '/data',
        type: 'bind',
        source: '/srv/data',
        options: ['rbind', 'ro'],
        uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
      },
    ],
    annotations: { a: 'b' },
  };
  const before = structuredClone(input);
  const p = planContainer('c', input, { sandboxId: 's' });
  t.same(input, before, 'the input spec is not modified');
  t.same(p.spec.process, input.process);
  t.same(p.spec.annotations, input.annotations);
  t.same(p.spec.root, { path: `${SHARED}/c/rootfs`, readonly: true });
  t.same(
    p.spec.mounts!.map((m) => m.destination),
    ['/proc', '/data'],
    'the layer is removed',
  );
  t.same(
    p.spec.mounts![1]!.uidMappings,
    [{ containerID: 0, hostID: 1000, size: 1 }],
    'fields the planner does not know are kept',
  );
});

t.test('rollback: what to undo, newest first', async (t) => {
  const p = planContainer('c', spec(bindMount('/a', '/srv/a'), bindMount('/d', '/dev/sdb')), {
    sandboxId: 's',
    blockDeviceDriver: 'virtio-blk',
    blockDevices: { '/dev/sdb': { pciPath: '02' } },
  });
  t.same(rollbackHostActions(p.hostActions), [
    { action: 'detach-block-device', source: '/dev/sdb', for: 'mounts[1]' },
    { action: 'unshare', hostPath: (p.hostActions[1] as { hostPath: string }).hostPath, for: 'mounts[0]' },
    { action: 'unshare', hostPath: '/run/kata-containers/shared/sandboxes/s/mounts/c/rootfs', for: 'root.path' },
  ]);
  t.same(rollbackHostActions([{ action: 'copy', source: '/a', guestPath: '/g/a', for: 'mounts[0]' }]), [
    { action: 'remove-copy', guestPath: '/g/a', for: 'mounts[0]' },
  ]);
});

t.test('bad specs: a typed error with a path into the spec', async (t) => {
  const root = { path: '/r' };
  const rows: [string, unknown, string, string][] = [
    ['not an object', 'config.json', 'ERR_INVALID_SPEC', 'spec'],
    ['mounts not an array', { root, mounts: {} }, 'ERR_INVALID_SPEC', 'mounts'],
    ['a mount not an object', { root, mounts: [null] }, 'ERR_INVALID_SPEC', 'mounts[0]'],
    [
      'no destination',
      {
        root,
        mounts: [
          { destination: '/ok', type: 'proc', source: 'proc' },
          { type: 'tmpfs', source: 'tmpfs' },
        ],
      },
      'ERR_INVALID_SPEC',
      'mounts[1].destination',
    ],
    [
      'destination with ..',
      { root, mounts: [{ destination: '/a/../../etc', type: 'tmpfs', source: 't' }] },
      'ERR_INVALID_SPEC',
      'mounts[0].destination',
    ],
    [
      'destination with NUL',
      { root, mounts: [{ destination: '/a\0', type: 'tmpfs', source: 't' }] },
      'ERR_INVALID_SPEC',
      'mounts[0].destination',
    ],
    [
      'unknown type',
      { root, mounts: [{ destination: '/a', type: 'tmfps', source: 't' }] },
      'ERR_INVALID_SPEC',
      'mounts[0].type',
    ],
    [
      'no type, not a bind',
      { root, mounts: [{ destination: '/a', source: '/x' }] },
      'ERR_INVALID_SPEC',
      'mounts[0].type',
    ],
    [
      'options not strings',
      { root, mounts: [{ destination: '/a', type: 'tmpfs', source: 't', options: [1] }] },
      'ERR_INVALID_SPEC',
      'mounts[0].options',
    ],
    [
      'relative bind source',
      { root, mounts: [{ destination: '/a', type: 'bind', source: 'data', options: ['rbind'] }] },
      'ERR_INVALID_SPEC',
      'mounts[0].source',
    ],
    [
      'bind without source',
      { root, mounts: [{ destination: '/a', type: 'bind', options: ['rbind'] }] },
      'ERR_INVALID_SPEC',
      'mounts[0].source',
    ],
    [
      'block volume, no device (stat says block)',
      {
        root,
        mounts: [
          { destination: '/ok', type: 'proc', source: 'proc' },
          { destination: '/a', type: 'bind', source: '/dev/sdz', options: ['rbind'] },
        ],
      },
      'ERR_BLOCK_DEVICE_NOT_ATTACHED',
      'mounts[1].source',
    ],
    [
      'block file, no device',
      {
        root,
        mounts: [
          {
            destination: '/a',
            type: 'bind',
            source: '/img',
            options: ['bind', 'io.katacontainers.fs-opt.block_device=file'],
          },
        ],
      },
      'ERR_BLOCK_DEVICE_NOT_ATTACHED',
      'mounts[0].source',
    ],
    ['no root', { mounts: [] }, 'ERR_INVALID_SPEC', 'root'],
    ['relative root, no bundle', { root: { path: 'rootfs' } }, 'ERR_INVALID_SPEC', 'root.path'],
  ];
  const settings: RuntimeSettings = { volumes: { '/dev/sdz': { kind: 'block' } } };
  for (const [name, input, code, path] of rows) {
    const before = structuredClone(input);
    t.throws(() => planContainer('c', input, settings), { code, path, name: 'StorageError' }, name);
    t.same(input, before, `${name}: the input is untouched`);
  }
  t.throws(() => planContainer('', { root }), { code: 'ERR_INVALID_SPEC', path: 'containerId' });
  t.throws(() => planContainer('../x', { root }), { code: 'ERR_INVALID_SPEC', path: 'containerId' });
  const e = (() => {
    try {
      planContainer('c', {
        root,
        mounts: [
          { destination: '/a', type: 'tmpfs', source: 't' },
          { destination: '/a', type: 'weird', source: 't' },
        ],
      });
    } catch (err) {
      return err as Error & { value: unknown };
    }
    return undefined;
  })();
  t.match(e?.message, /^mounts\[1\]\.type: is not a filesystem/);
  t.equal(e?.value, 'weird');
});

t.test('bad settings: ERR_INVALID_RUNTIME_SETTINGS with a path into them', async (t) => {
  const rows: [unknown, string][] = [
    ['virtio-fs', 'settings'],
    [{ sharedFs: 'virtiofs' }, 'sharedFs'],
    [{ virtioFsCache: 'none' }, 'virtioFsCache'],
    [{ virtioFsCacheSize: -1 }, 'virtioFsCacheSize'],
    [{ msize9p: 0 }, 'msize9p'],
    [{ blockDeviceDriver: 'virtio-blk-pci' }, 'blockDeviceDriver'],
    [{ shmSize: '64m' }, 'shmSize'],
    [{ guestSharedDir: 'run/x' }, 'guestSharedDir'],
    [{ guestSandboxDir: '/run/../x' }, 'guestSandboxDir'],
    [{ sandboxId: 'a/b' }, 'sandboxId'],
    [{ shared_fs: 'none' }, 'shared_fs'],
    [{ blockDevices: { 'dev/sdb': {} } }, 'blockDevices["dev/sdb"]'],
    [{ blockDevices: { '/dev/sdb': { pciPath: 2 } } }, 'blockDevices["/dev/sdb"].pciPath'],
    [{ blockDevices: { '/dev/sdb': { fsGroup: { groupId: 0 } } } }, 'blockDevices["/dev/sdb"].fsGroup.groupId'],
    [{ blockDevices: { '/dev/sdb': { pci: '02' } } }, 'blockDevices["/dev/sdb"].pci'],
    [{ volumes: { '/v': { kind: 'pipe' } } }, 'volumes["/v"].kind'],
    [{ volumes: { '/v': { gid: -1 } } }, 'volumes["/v"].gid'],
  ];
  for (const [settings, path] of rows) {
    t.throws(() => planSandbox(settings as RuntimeSettings), { code: 'ERR_INVALID_RUNTIME_SETTINGS', path }, path);
  }
  // A device without the address the configured driver needs.
  t.throws(
    () =>
      planContainer('c', spec(bindMount('/d', '/dev/sdb')), {
        blockDeviceDriver: 'virtio-blk',
        blockDevices: { '/dev/sdb': { scsiAddr: '0:1' } },
      }),
    { code: 'ERR_INVALID_RUNTIME_SETTINGS', path: 'blockDevices["/dev/sdb"].pciPath' },
  );
  t.throws(
    () =>
      planContainer('c', spec(bindMount('/d', '/dev/pmem0')), {
        blockDevices: { '/dev/pmem0': { pmem: '/dev/pmem0' } },
      }),
    { code: 'ERR_INVALID_RUNTIME_SETTINGS', path: 'blockDevices["/dev/pmem0"].fstype' },
  );
});

t.test('kata-storage/runtime loads no native code', async (t) => {
  const r = spawnSync(
    process.execPath,
    [
      ...process.execArgv,
      '-e',
      `require(${JSON.stringify(join(__dirname, '..', 'lib', 'runtime', 'index.ts'))}); console.log(JSON.stringify(Object.keys(require.cache)))`,
    ],
    { encoding: 'utf8', timeout: 100000, env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' } },
  );
  t.equal(r.status, 0, r.stderr);
  const loaded = JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
  t.ok(
    loaded.some((f) => f.endsWith(join('runtime', 'container.ts'))),
    'the planner was loaded',
  );
  t.same(
    loaded.filter((f) => f.endsWith('.node') || /lib[\\/](native|mount|storage|sandbox)\.ts$/.test(f)),
    [],
    'no addon, no module that loads it',
  );
});

t.test('any spec: a plan that keeps every destination, or a refusal whose path is in the input', async (t) => {
  const fc = (await import('fast-check')).default;
  const word = fc.constantFrom(
    'a',
    'b',
    'data',
    'kubernetes.io~secret',
    'kubernetes.io~empty-dir',
    'dev',
    'sys',
    '..',
    '.',
    '',
  );
  const path = fc
    .array(word, { minLength: 0, maxLength: 4 })
    .chain((parts) => fc.constantFrom(`/${parts.join('/')}`, parts.join('/')));
  const mount = fc.record(
    {
      destination: fc.oneof(path, fc.constant(undefined), fc.constant(7)),
      type: fc.constantFrom(undefined, 'bind', 'tmpfs', 'proc', 'ephemeral', 'local', 'ext4', 'bogus'),
      source: fc.oneof(path, fc.constantFrom('/dev/sdb', '/dev/shm', 'tmpfs', undefined)),
      options: fc.subarray([
        'rbind',
        'bind',
        'ro',
        'rw',
        'rprivate',
        'io.katacontainers.fs-opt.is-layer',
        'io.katacontainers.fs-opt.block_device=file',
      ]),
    },
    { requiredKeys: [] },
  );
  const settings: RuntimeSettings = {
    bundle: '/b',
    shmSize: 4096,
    blockDeviceDriver: 'virtio-blk',
    blockDevices: { '/dev/sdb': { pciPath: '02', fstype: 'ext4' } },
    volumes: { '/a/kubernetes.io~empty-dir/data': { fstype: 'tmpfs' } },
  };
  let planned = 0;
  let refused = 0;
  fc.assert(
    fc.property(
      fc.array(mount, { maxLength: 6 }),
      fc.constantFrom<RuntimeSettings['sharedFs']>('virtio-fs', 'virtio-9p', 'none'),
      (mounts, sharedFs) => {
        const input = { root: { path: sharedFs === 'none' ? '/dev/sdb' : 'rootfs' }, mounts };
        const before = structuredClone(input);
        const s = { ...settings, sharedFs };
        let plan;
        try {
          plan = planContainer('c', input, s);
        } catch (e) {
          const err = e as { code: string; path: string; name: string };
          refused++;
          if (
            err.name !== 'StorageError' ||
            !['ERR_INVALID_SPEC', 'ERR_BLOCK_DEVICE_NOT_ATTACHED', 'ERR_INVALID_RUNTIME_SETTINGS'].includes(err.code)
          )
            throw e;
          // The path names a place in the input: `mounts[i]...`, `root...` or `linux...`.
          const m = /^mounts\[(\d+)\]/.exec(err.path);
          if (m !== null && Number(m[1]) >= mounts.length)
            throw new Error(`path ${err.path} is outside the input`, { cause: e });
          if (!/^(mounts|root|linux|blockDevices|volumes)/.test(err.path))
            throw new Error(`unexpected path ${err.path}`, { cause: e });
          return;
        }
        planned++;
        if (JSON.stringify(input) !== JSON.stringify(before)) throw new Error('the input was modified');
        const kept = plan.spec.mounts!.map((x) => x.destination);
        const layers = mounts.filter((x) => x.options?.includes('io.katacontainers.fs-opt.is-layer')).length;
        // Only image layers leave the spec (no source here is a socket or fifo to ignore).
        if (kept.length !== mounts.length - layers) throw new Error(`mounts were lost: ${JSON.stringify(kept)}`);
        for (const st of plan.storages) {
          if (!st.mountPoint.startsWith('/') || st.driver === '' || st.source === '' || st.fstype === '')
            throw new Error(`bad storage ${JSON.stringify(st)}`);
        }
        if (JSON.stringify(planContainer('c', before, s)) !== JSON.stringify(plan))
          throw new Error('not deterministic');
      },
    ),
    { numRuns: 400, seed: Number(process.env.KATA_PLAN_SEED ?? 42) },
  );
  t.ok(planned > 20 && refused > 20, `both outcomes exercised (${planned} planned, ${refused} refused)`);
});

t.test('a planned hugetlbfs size is one the agent takes: whole pages, read exactly past 2^53', async (t) => {
  const huge = `${POD}/kubernetes.io~empty-dir/hugepage`;
  const volumes = { [huge]: { fstype: 'hugetlbfs', options: ['pagesize=2M'] } };
  const withLimit = (limit: number | string) => {
    const s = spec(bindMount('/hugepages', huge));
    s.linux = { resources: { hugepageLimits: [{ pageSize: '2MB', limit: limit as number }] } };
    return s;
  };
  const validate = (options: string[]) =>
    defaultRegistry().get('ephemeral')!.validate!(
      {
        ...normalizeStorage({
          driver: 'ephemeral',
          source: 'nodev',
          fstype: 'hugetlbfs',
          options,
          mountPoint: '/run/x',
        }),
        mountOptions: parseMountOptions(options),
        placement: { root: '/run', rel: 'x' },
      },
      { allowedRoots: ['/run'] },
    );
  for (const [limit, size] of [
    [3 * 1048576, '2097152'], // a partial page is never reserved (Kata's agent divides)
    [9223372036854772000, '9223372036852678656'], // the runtime-spec example's, past 2^53
    ['18446744073709551615', '18446744073707454464'], // the largest uint64
  ] as const) {
    const p = planContainer('c', withLimit(limit), { volumes });
    const options = [`pagesize=2097152,size=${size}`];
    t.same(p.storages[0]!.options, options, `limit ${limit}`);
    t.doesNotThrow(() => validate(options), `the agent takes size=${size}`);
  }
  t.throws(() => planContainer('c', withLimit(1048576), { volumes }), {
    code: 'ERR_INVALID_SPEC',
    path: 'linux.resources.hugepageLimits',
    message: /less than one 2M page/,
  });
  // The agent: sizes and page sizes are uint64s; what no kernel can reserve is refused by name.
  t.throws(() => validate(['pagesize=2097152,size=18446744073709551616']), {
    code: 'ERR_INVALID_MOUNT_OPTION',
    message: /at most 18446744073709551615/,
  });
  t.throws(() => validate(['pagesize=1024,size=18446744073709550592']), {
    code: 'ERR_INVALID_MOUNT_OPTION',
    message: /more than any kernel can reserve/,
  });
});
