// The runtime planner's host side: binds shared into the guest (Kata's mountSharedDirMounts with
// FilesystemShare.ShareFile), the container's root filesystem (ShareRootFilesystem) and the host
// actions undone on rollback, against the Kata runtime's own test cases (virtcontainers
// kata_agent_test.go, container_test.go): their inputs and expected outputs are the facts these tables restate.
import t from 'tap';
import { planContainer, rollbackHostActions } from '../../lib/runtime/index';
import { SHARED, POD, spec, bindMount } from '../helpers/plan';

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
