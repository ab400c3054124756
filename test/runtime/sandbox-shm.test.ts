// The runtime planner's sandbox storages (Kata's setupStorages) and a container's /dev/shm
// (handleShm), against the Kata runtime's own test cases (virtcontainers kata_agent_test.go,
// kata_agent_linux_test.go): their inputs and expected outputs are the facts these tables restate.
import t from 'tap';
import {
  planContainer,
  planSandbox,
  virtioFsUsesDax,
  DEFAULT_SHM_SIZE,
  type RuntimeSettings,
} from '../../lib/runtime/index';
import { SHARED, SANDBOX, EPHEMERAL, spec } from '../helpers/plan';

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
