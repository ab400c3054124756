// The runtime planner's settings (Kata's configuration.toml keys and what the runtime knows of
// the host): each bad one refused with ERR_INVALID_RUNTIME_SETTINGS and a path into them.
import t from 'tap';
import { planContainer, planSandbox, type RuntimeSettings } from '../../lib/runtime/index';
import { spec, bindMount } from '../helpers/plan';

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
