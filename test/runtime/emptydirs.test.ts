// The runtime planner's emptyDirs: memory (Kata's handleEphemeralStorage with katautils'
// SetEphemeralStorageType), disk (handleLocalStorage) and HugePages (handleHugepages), against the
// Kata runtime's own test cases (virtcontainers kata_agent_test.go, kata_agent_linux_test.go): their inputs and expected outputs are the facts these tables restate.
import t from 'tap';
import { planContainer } from '../../lib/runtime/index';
import { ramBytes } from '../../lib/runtime/hugepages';
import { defaultRegistry, normalizeStorage, parseMountOptions } from '../../lib/index';
import { SHARED, EPHEMERAL, POD, spec, bindMount } from '../helpers/plan';

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
