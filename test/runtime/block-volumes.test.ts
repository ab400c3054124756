// The runtime planner's block volumes (Kata's handleDeviceBlockVolume, createBlkStorageObject and
// handleBlkOCIMounts), against the Kata runtime's own test cases (virtcontainers
// kata_agent_test.go; runtime-rs volume/utils.rs): their inputs and expected outputs are the facts these tables restate.
import t from 'tap';
import { planContainer, type OciMount, type RuntimeSettings } from '../../lib/runtime/index';
import { base64Url } from '../../lib/runtime/block';
import { STORAGE, spec, bindMount } from '../helpers/plan';

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
