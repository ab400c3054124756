import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  assertBlockDevice,
  deviceNumber,
  findCcwBlockDevice,
  findMmioBlockDevice,
  findPciBlockDevice,
  findPmemDevice,
  findScsiBlockDevice,
  parseCcwDevice,
  parsePciPath,
  parsePciPathFull,
  parseScsiAddress,
  pciPathToSysfs,
  ueventMonitorState,
} from '../../lib/index';
import { FakeSysfs } from '../fixtures/sysfs';
import { mountSnapshot } from '../helpers/mountinfo';
import { rejection as rejectionOf } from '../helpers/rejection';

type Coded = Error & { code?: string; value?: unknown; errno?: number; syscall?: string; path?: string };

function codeOf(fn: () => unknown): Coded {
  try {
    fn();
  } catch (e) {
    return e as Coded;
  }
  throw new Error('expected a throw');
}

const rejection = (p: Promise<unknown>): Promise<Coded> => rejectionOf<Coded>(p);

t.test('parsePciPath', async (t) => {
  t.same(parsePciPath('02'), [{ slot: 2, fn: 0 }]);
  t.same(parsePciPath('02/03'), [
    { slot: 2, fn: 0 },
    { slot: 3, fn: 0 },
  ]);
  t.same(parsePciPath('0a/00/1f'), [
    { slot: 10, fn: 0 },
    { slot: 0, fn: 0 },
    { slot: 31, fn: 0 },
  ]);
  t.same(parsePciPath('02.1/1f.7'), [
    { slot: 2, fn: 1 },
    { slot: 31, fn: 7 },
  ]);
  t.same(
    parsePciPathFull('02/03'),
    {
      slots: [
        { slot: 2, fn: 0 },
        { slot: 3, fn: 0 },
      ],
    },
    'no root complex in the ordinary form',
  );
  t.same(
    parsePciPathFull('20/00/02'),
    {
      rootComplex: '20',
      slots: [
        { slot: 0, fn: 0 },
        { slot: 2, fn: 0 },
      ],
    },
    'NUMA form',
  );
  t.same(parsePciPath('20/00/02'), [
    { slot: 0, fn: 0 },
    { slot: 2, fn: 0 },
  ]);
  for (const bad of [
    '',
    '20',
    '00.8',
    '//',
    'xyz',
    '02 ',
    '0x2',
    '02/',
    '/02',
    '002',
    '02.',
    '02/20',
    '20.1/00',
    '02\u0000',
  ]) {
    const e = codeOf(() => parsePciPath(bad));
    t.equal(e.code, 'ERR_INVALID_PCI_PATH', JSON.stringify(bad));
    t.equal(e.value, bad, 'carries the refused path');
  }
  t.equal(codeOf(() => parsePciPath(2 as unknown as string)).code, 'ERR_INVALID_ARG_TYPE');
});

t.test('parseCcwDevice and parseScsiAddress hold Kata vectors', async (t) => {
  t.same(parseCcwDevice('0.0.0005'), { cssid: 0, ssid: 0, devno: 5 });
  t.same(parseCcwDevice('0.3.ffff'), { cssid: 0, ssid: 3, devno: 0xffff });
  t.same(parseCcwDevice('0.1.a'), { cssid: 0, ssid: 1, devno: 10 });
  for (const bad of ['', '0', '0.0', '0.0.00000', '0.4.0000', '1.0.0000', '0.0.xyz', '0.0.0.0', ' 0.0.1']) {
    const e = codeOf(() => parseCcwDevice(bad));
    t.equal(e.code, 'ERR_INVALID_CCW_DEVICE', JSON.stringify(bad));
    t.equal(e.value, bad);
  }
  t.same(parseScsiAddress('0:0'), { target: 0, lun: 0 });
  t.same(parseScsiAddress('1:2'), { target: 1, lun: 2 });
  for (const bad of ['', '1', '1:2:3', 'a:b', '-1:0', '1:', ':1', '1: 2', '4294967296:0']) {
    const e = codeOf(() => parseScsiAddress(bad));
    t.equal(e.code, 'ERR_INVALID_SCSI_ADDRESS', JSON.stringify(bad));
    t.equal(e.value, bad);
  }
});

t.test("pciPathToSysfs follows Kata's progression: zero, one and two bridges", async (t) => {
  const fs = new FakeSysfs(t);
  const sysfsRoot = fs.root;
  const rootBus = join(sysfsRoot, 'devices/pci0000:00');
  const walk = (p: string): string => pciPathToSysfs(p, { sysfsRoot });
  t.equal(walk('02'), `${rootBus}/0000:00:02.0`, 'the last element need not exist');
  t.equal(codeOf(() => walk('02/03')).code, 'ERR_SYSFS', 'missing bridge');
  t.equal(codeOf(() => walk('02/03/04')).code, 'ERR_SYSFS');

  fs.pciDevice(['0000:00:02.0']);
  t.equal(walk('02'), `${rootBus}/0000:00:02.0`);
  const noBus = codeOf(() => walk('02/03'));
  t.equal(noBus.code, 'ERR_SYSFS', 'a device with no bus behind it is no bridge');
  t.match(noBus.message, /no PCI bus behind the bridge/);

  fs.pciBus('devices/pci0000:00/0000:00:02.0', '0000:01');
  t.equal(walk('02/03'), `${rootBus}/0000:00:02.0/0000:01:03.0`);
  t.equal(codeOf(() => walk('02/03/04')).code, 'ERR_SYSFS');

  fs.pciBus('devices/pci0000:00/0000:00:02.0/0000:01:03.0', '0000:02');
  t.equal(walk('02/03/04'), `${rootBus}/0000:00:02.0/0000:01:03.0/0000:02:04.0`);
  t.equal(walk('02/03/04.1'), `${rootBus}/0000:00:02.0/0000:01:03.0/0000:02:04.1`, 'the function is kept');
  t.equal(
    pciPathToSysfs('02', { sysfsRoot: `${sysfsRoot}/` }),
    `${rootBus}/0000:00:02.0`,
    'trailing slash on the root',
  );
  t.equal(pciPathToSysfs('02'), '/sys/devices/pci0000:00/0000:00:02.0', 'default root is /sys');
});

t.test("pciPathToSysfs falls back to the bus of a bridge's child devices", async (t) => {
  const fs = new FakeSysfs(t);
  const bridge = fs.pciDevice(['0000:00:05.0']);
  fs.dir(`${bridge}/0000:07:00.0`);
  fs.dir(`${bridge}/0000:07:01.0`);
  fs.file(`${bridge}/vendor`, '0x1b36\n');
  t.equal(pciPathToSysfs('05/01', { sysfsRoot: fs.root }), join(fs.root, bridge, '0000:07:01.0'));

  fs.dir(`${bridge}/0000:08:00.0`);
  const two = codeOf(() => pciPathToSysfs('05/01', { sysfsRoot: fs.root }));
  t.equal(two.code, 'ERR_SYSFS', 'children on two buses are refused');
  t.match(two.message, /two PCI buses/);
});

t.test('pciPathToSysfs refuses broken and hostile trees with ERR_SYSFS', async (t) => {
  const fs = new FakeSysfs(t);
  const cases: [string, (bridge: string) => void, RegExp][] = [
    [
      'two buses in pci_bus/',
      (b) => {
        fs.pciBus(b, '0000:01');
        fs.pciBus(b, '0000:02');
      },
      /exactly one PCI bus.*found 2/,
    ],
    ['no bus in pci_bus/', (b) => fs.dir(`${b}/pci_bus`), /found 0/],
    ['pci_bus/ is a file', (b) => fs.file(`${b}/pci_bus`, 'x'), /cannot list/],
    ['a bus name that is not one', (b) => fs.dir(`${b}/pci_bus/${'0'.repeat(200)}`), /not a PCI bus name/],
    ['pci_bus/ links to itself', (b) => symlinkSync('pci_bus', join(fs.root, b, 'pci_bus')), /cannot list/],
    [
      'a runaway directory',
      (b) => {
        fs.dir(`${b}/pci_bus`);
        for (let i = 0; i < 4100; i++) mkdirSync(join(fs.root, b, 'pci_bus', `0000:${i}`));
      },
      /more than 4096 entries/,
    ],
  ];
  let slot = 1;
  for (const [name, build, message] of cases) {
    const hex = (slot++).toString(16).padStart(2, '0');
    const bridge = fs.pciDevice([`0000:00:${hex}.0`]);
    build(bridge);
    const e = codeOf(() => pciPathToSysfs(`${hex}/01`, { sysfsRoot: fs.root }));
    t.equal(e.code, 'ERR_SYSFS', name);
    t.match(e.message, message, name);
    t.ok(typeof e.value === 'string' && (e.value as string).startsWith(fs.root), `${name}: value names the sysfs path`);
  }
});

t.test('pciPathToSysfs with a root complex', async (t) => {
  const fs = new FakeSysfs(t);
  t.equal(
    pciPathToSysfs('02', { sysfsRoot: fs.root, rootComplex: '20' }),
    join(fs.root, 'devices/pci0000:20/0000:20:02.0'),
  );
  const rp = fs.pciDevice(['0000:20:00.0'], '20');
  fs.pciBus(rp, '0000:21');
  t.equal(pciPathToSysfs('20/00/02', { sysfsRoot: fs.root }), join(fs.root, rp, '0000:21:02.0'), 'NUMA form');
  t.equal(pciPathToSysfs('20/00/02', { sysfsRoot: fs.root, rootComplex: '20' }), join(fs.root, rp, '0000:21:02.0'));
  const clash = codeOf(() => pciPathToSysfs('20/00/02', { sysfsRoot: fs.root, rootComplex: '21' }));
  t.equal(clash.code, 'ERR_INVALID_PCI_PATH', 'two different root complexes');
  t.equal(codeOf(() => pciPathToSysfs('02', { rootComplex: 'xyz' })).code, 'ERR_INVALID_PCI_PATH');
  t.equal(codeOf(() => pciPathToSysfs('02', { rootComplex: 2 as unknown as string })).code, 'ERR_INVALID_ARG_TYPE');
  t.equal(codeOf(() => pciPathToSysfs('02', { sysfsRoot: 'sys' })).code, 'ERR_INVALID_ARG_VALUE');
  t.equal(codeOf(() => pciPathToSysfs('xyz')).code, 'ERR_INVALID_PCI_PATH');
});

t.test('findPciBlockDevice on fixture trees', async (t) => {
  const fs = new FakeSysfs(t);
  const sysfsRoot = fs.root;
  const dev = fs.pciDevice(['0000:00:02.0']);
  fs.virtioBlk(dev, 1, 'vdb', 2);
  t.equal(await findPciBlockDevice('02', { sysfsRoot }), '/dev/vdb', 'the disk, not its partitions');
  t.equal(await findPciBlockDevice('02', { sysfsRoot, devRoot: '/x/dev/' }), '/x/dev/vdb', 'devRoot');

  const bridge = fs.pciDevice(['0000:00:03.0']);
  fs.pciBus(bridge, '0000:01');
  const behind = fs.pciDevice(['0000:00:03.0', '0000:01:04.0']);
  fs.virtioBlk(behind, 7, 'vdc');
  t.equal(await findPciBlockDevice('03/04', { sysfsRoot }), '/dev/vdc', 'behind a bridge');

  const twoDisks = fs.pciDevice(['0000:00:06.0']);
  fs.file(`${twoDisks}/virtio4/block/vdx/dev`);
  fs.file(`${twoDisks}/virtio4/block/vdy/dev`);
  t.equal(
    (await rejection(findPciBlockDevice('06', { sysfsRoot }))).code,
    'ERR_SYSFS',
    'two disks under one virtio device',
  );

  t.equal(
    (await rejection(findPciBlockDevice('03/04/05', { sysfsRoot }))).code,
    'ERR_SYSFS',
    'a bridge that is not there',
  );
  t.equal((await rejection(findPciBlockDevice('xyz', { sysfsRoot }))).code, 'ERR_INVALID_PCI_PATH');
});

t.test('the PCI root bus is found where the firmware put it (ACPI, device tree, class link)', async (t) => {
  // arm64 `virt` with a device tree: the host bridge is a platform device (found on a real guest).
  const dt = new FakeSysfs(t);
  const rb = 'devices/platform/4010000000.pcie/pci0000:00';
  dt.dir('devices/platform/9000000.pl011');
  dt.virtioBlk(dt.dir(`${rb}/0000:00:01.0`).slice(dt.root.length + 1), 1, 'vda');
  dt.pciBus(dt.dir(`${rb}/0000:00:02.0`).slice(dt.root.length + 1), '0000:01');
  dt.virtioBlk(dt.dir(`${rb}/0000:00:02.0/0000:01:00.0`).slice(dt.root.length + 1), 2, 'vdb');
  t.equal(pciPathToSysfs('02/00', { sysfsRoot: dt.root }), join(dt.root, rb, '0000:00:02.0/0000:01:00.0'));
  t.equal(await findPciBlockDevice('01', { sysfsRoot: dt.root }), '/dev/vda', 'cold-plugged on the root bus');
  t.equal(await findPciBlockDevice('02/00', { sysfsRoot: dt.root }), '/dev/vdb', 'behind a root port');
  const late = await rejection(findPciBlockDevice('03', { sysfsRoot: dt.root, timeoutMs: 30 }));
  t.equal(late.code, 'ETIMEDOUT');
  t.match(late.message, `/${rb}/0000:00:03.0`, 'the awaited devpath is under the platform device');

  // Deeper nesting that only the kernel's pci_bus class link names (an SoC bus in between).
  const soc = new FakeSysfs(t);
  const deep = 'devices/platform/soc/30000000.pcie/pci0000:00';
  soc.dir(`${deep}/pci_bus/0000:00`);
  soc.link('class/pci_bus/0000:00', `${deep}/pci_bus/0000:00`);
  t.equal(pciPathToSysfs('04', { sysfsRoot: soc.root }), join(soc.root, deep, '0000:00:04.0'));

  // ACPI (x86-64 q35, arm64 with UEFI) wins when both exist, as in Kata's agent.
  const acpi = new FakeSysfs(t);
  acpi.pciDevice(['0000:00:02.0']);
  acpi.dir('devices/platform/4010000000.pcie/pci0000:00');
  t.equal(pciPathToSysfs('02', { sysfsRoot: acpi.root }), join(acpi.root, 'devices/pci0000:00/0000:00:02.0'));

  // A root complex other than 00 is looked up the same way.
  acpi.dir('devices/platform/4020000000.pcie/pci0000:20');
  t.equal(
    pciPathToSysfs('20/05', { sysfsRoot: acpi.root }),
    join(acpi.root, 'devices/platform/4020000000.pcie/pci0000:20/0000:20:05.0'),
  );

  // Two platform devices claiming one root bus: refused, nothing guessed.
  dt.dir('devices/platform/3f000000.pcie/pci0000:00');
  const two = codeOf(() => pciPathToSysfs('01', { sysfsRoot: dt.root }));
  t.equal(two.code, 'ERR_SYSFS');
  t.match(two.message, /two platform devices hold PCI root bus pci0000:00/);
});

t.test('SCSI and CCW lookups do not depend on where the host adapter sits', async (t) => {
  // virtio-scsi behind the device-tree root bus: the host is found through bus/scsi and class/scsi_host.
  const fs = new FakeSysfs(t);
  const hba = 'devices/platform/4010000000.pcie/pci0000:00/0000:00:03.0/virtio3';
  fs.dir(`${hba}/host2/scsi_host/host2`);
  fs.file(`${hba}/host2/scsi_host/host2/scan`);
  fs.link('class/scsi_host/host2', `${hba}/host2/scsi_host/host2`);
  const target = `${hba}/host2/target2:0:1/2:0:1:3`;
  fs.disk(target, 'sdb');
  fs.link('bus/scsi/devices/2:0:1:3', target);
  t.equal(await findScsiBlockDevice('1:3', { sysfsRoot: fs.root }), '/dev/sdb');
  await rejection(findScsiBlockDevice('1:4', { sysfsRoot: fs.root, timeoutMs: 20 }));
  t.equal(readFileSync(join(fs.root, hba, 'host2/scsi_host/host2/scan'), 'utf8'), '0 1 4', 'scan reached the host');
});

// Found on a real q35 guest: a SCSI disk in sysfs whose node opened with ENXIO (the kernel had
// not finished adding it) was handed to mount. Such a disk is not found until its add uevent.
t.test(
  'a disk in sysfs whose node opens with ENXIO is not yet found',
  { skip: process.getuid?.() !== 0 && 'mknod needs root' },
  async (t) => {
    const fs = new FakeSysfs(t);
    const dev = fs.pciDevice(['0000:00:0b.0']);
    fs.virtioBlk(dev, 5, 'vdz');
    const devRoot = fs.dir('dev');
    // Major 240 is reserved for local/experimental use: no driver answers it, so open(2) is ENXIO.
    execFileSync('mknod', [join(devRoot, 'vdz'), 'b', '240', '0']);
    const e = await rejection(findPciBlockDevice('0b', { sysfsRoot: fs.root, devRoot, timeoutMs: 50 }));
    t.equal(e.code, 'ETIMEDOUT', 'not live: waited, then timed out');
    execFileSync('rm', [join(devRoot, 'vdz')]);
    t.equal(
      await findPciBlockDevice('0b', { sysfsRoot: fs.root, devRoot, timeoutMs: 50 }),
      join(devRoot, 'vdz'),
      'no node: the mount decides, as before',
    );
  },
);

t.test('a device that appears in sysfs without an event is still found at the deadline', async (t) => {
  const fs = new FakeSysfs(t);
  const dev = fs.pciDevice(['0000:00:09.0']);
  const started = Date.now();
  const pending = findPciBlockDevice('09', { sysfsRoot: fs.root, timeoutMs: 400 });
  setTimeout(() => fs.virtioBlk(dev, 3, 'vdq'), 50);
  t.equal(await pending, '/dev/vdq');
  t.ok(Date.now() - started < 2000, 'within the timeout');
});

t.test('rescan writes 1 to bus/pci/rescan before waiting', async (t) => {
  const fs = new FakeSysfs(t);
  const rescan = fs.file('bus/pci/rescan');
  const e = await rejection(findPciBlockDevice('0a', { sysfsRoot: fs.root, timeoutMs: 50, rescan: true }));
  t.equal(e.code, 'ETIMEDOUT');
  t.equal(readFileSync(rescan, 'utf8'), '1');
  // A refused rescan does not end the wait (the device may still be hot-plugged); it is reported
  // with the timeout.
  const fs2 = new FakeSysfs(t);
  const noFile = await rejection(findPciBlockDevice('0a', { sysfsRoot: fs2.root, timeoutMs: 50, rescan: true }));
  t.equal(noFile.code, 'ETIMEDOUT', 'no rescan attribute: still waited');
  t.match((noFile as unknown as { details: unknown }).details, [
    { path: join(fs2.root, 'bus/pci/rescan'), code: 'ENOENT', syscall: 'open' },
  ]);
  t.match(noFile.message, /targets that failed on the way: .*bus\/pci\/rescan: cannot open sysfs attribute/);
  const fs3 = new FakeSysfs(t);
  fs3.dir('bus/pci/rescan'); // a rescan the kernel refuses (EISDIR stands in for it)
  const late = findPciBlockDevice('0b', { sysfsRoot: fs3.root, timeoutMs: 2000, rescan: true });
  setTimeout(() => fs3.virtioBlk(fs3.pciDevice(['0000:00:0b.0']), 4, 'vdr'), 50);
  t.equal(await late, '/dev/vdr', 'the device that appears after a refused rescan is found');
});

t.test('SCSI: hosts that refuse their scan never stop the others (several failing)', async (t) => {
  const fs = new FakeSysfs(t);
  const hosts = [0, 1, 2, 3, 4].map((h) => fs.scsiHost(h));
  // host0: no scan attribute; host2: a directory where the attribute belongs; host4: a symlink
  // (refused with O_NOFOLLOW). host1 and host3 take the scan.
  rmSync(join(fs.root, hosts[0]!, 'scsi_host/host0/scan'));
  rmSync(join(fs.root, hosts[2]!, 'scsi_host/host2/scan'));
  mkdirSync(join(fs.root, hosts[2]!, 'scsi_host/host2/scan'));
  rmSync(join(fs.root, hosts[4]!, 'scsi_host/host4/scan'));
  symlinkSync('/dev/null', join(fs.root, hosts[4]!, 'scsi_host/host4/scan'));
  const e = (await rejection(findScsiBlockDevice('3:4', { sysfsRoot: fs.root, timeoutMs: 100 }))) as Coded & {
    details: Array<Record<string, unknown>>;
  };
  t.equal(e.code, 'ETIMEDOUT');
  for (const h of [1, 3])
    t.equal(readFileSync(join(fs.root, hosts[h]!, `scsi_host/host${h}/scan`), 'utf8'), '0 3 4', `host${h} was asked`);
  t.match(
    e.details.map((d) => [d.path, d.code]),
    [
      [join(fs.root, 'class/scsi_host/host0/scan'), 'ENOENT'],
      [join(fs.root, 'class/scsi_host/host2/scan'), 'EISDIR'],
      [join(fs.root, 'class/scsi_host/host4/scan'), 'ELOOP'],
    ],
    'each failing host is in the details',
  );
  t.match(e.message, /host0\/scan.*host2\/scan.*host4\/scan/);

  // Scans refused everywhere, but the disk is hot-plugged anyway: it is found.
  const late = findScsiBlockDevice('5:6', { sysfsRoot: fs.root, timeoutMs: 2000 });
  setTimeout(() => fs.scsiDisk(3, 5, 6, 'sdz'), 50);
  t.equal(await late, '/dev/sdz');
});

t.test('SCSI: one unreadable device entry does not hide the disk on another host', async (t) => {
  const fs = new FakeSysfs(t);
  fs.scsiHost(0);
  fs.scsiHost(1);
  fs.scsiHost(2);
  // host0's entry for 7:8 has two disks (a broken tree), host1's has a file where block/ belongs.
  fs.scsiDisk(0, 7, 8, 'sda');
  fs.disk('devices/pci0000:00/0000:00:03.0/virtio2/host0/target0:0:7/0:0:7:8', 'sdb');
  const rel1 = 'devices/pci0000:00/0000:00:03.0/virtio2/host1/target1:0:7/1:0:7:8';
  fs.file(`${rel1}/block`, 'not a directory');
  fs.link('bus/scsi/devices/1:0:7:8', rel1);
  fs.scsiDisk(2, 7, 8, 'sdc');
  t.equal(await findScsiBlockDevice('7:8', { sysfsRoot: fs.root }), '/dev/sdc', 'found on the host that can be read');
  rmSync(join(fs.root, 'bus/scsi/devices/2:0:7:8'));
  const e = (await rejection(findScsiBlockDevice('7:8', { sysfsRoot: fs.root, timeoutMs: 100 }))) as Coded & {
    details: Array<Record<string, unknown>>;
  };
  t.equal(e.code, 'ETIMEDOUT', 'never an ERR_SYSFS for one bad entry');
  t.match(e.details, [
    { path: join(fs.root, 'bus/scsi/devices/0:0:7:8/block'), reason: /expected one disk, found 2/ },
    { path: join(fs.root, 'bus/scsi/devices/1:0:7:8/block') },
  ]);
});

t.test('the real machine: PCI 02 is /dev/vda', async (t) => {
  let real = '';
  try {
    real = realpathSync('/sys/block/vda');
  } catch {
    // not this kind of machine
  }
  if (!real.startsWith('/sys/devices/pci0000:00/0000:00:02.0/virtio')) {
    t.skip(`/sys/block/vda is not a virtio-blk disk at PCI 0000:00:02.0 here (${real || 'absent'})`, () => {});
    return;
  }
  t.equal(await findPciBlockDevice('02'), '/dev/vda');
  t.equal(await findPciBlockDevice('02.0', { timeoutMs: 0 }), '/dev/vda', 'explicit function 0');
  const [major, minor] = readFileSync('/sys/block/vda/dev', 'utf8').trim().split(':').map(Number);
  t.same(assertBlockDevice('/dev/vda'), { major, minor });
  t.same(deviceNumber('/dev/vda'), { type: 'block', major, minor });
});

t.test('CCW on a fixture tree', async (t) => {
  const fs = new FakeSysfs(t);
  fs.ccwBlk('0.0.0000', '0.0.0005', 0, 'vda');
  t.equal(await findCcwBlockDevice('0.0.0005', { sysfsRoot: fs.root }), '/dev/vda');
  t.equal(await findCcwBlockDevice('0.0.5', { sysfsRoot: fs.root }), '/dev/vda', 'short devno is the same device');
  t.equal((await rejection(findCcwBlockDevice('0.0.0006', { sysfsRoot: fs.root, timeoutMs: 30 }))).code, 'ETIMEDOUT');
  fs.dir('devices/platform/elsewhere/0.0.0007');
  fs.link('bus/ccw/devices/0.0.0007', 'devices/platform/elsewhere/0.0.0007');
  t.equal(
    (await rejection(findCcwBlockDevice('0.0.0007', { sysfsRoot: fs.root }))).code,
    'ERR_SYSFS',
    'not under css0',
  );
  const bad = await rejection(findCcwBlockDevice('0.4.0000', { sysfsRoot: fs.root }));
  t.equal(bad.code, 'ERR_INVALID_CCW_DEVICE');
  t.equal(bad.value, '0.4.0000');
});

t.test('SCSI on a fixture tree: exact target:lun, scan written to every host', async (t) => {
  const fs = new FakeSysfs(t);
  const h0 = fs.scsiHost(0);
  const h1 = fs.scsiHost(1);
  fs.scsiDisk(0, 1, 2, 'sda', 2);
  fs.scsiDisk(0, 1, 20, 'sdb');
  fs.scsiDisk(1, 11, 2, 'sdc');
  t.equal(await findScsiBlockDevice('1:2', { sysfsRoot: fs.root }), '/dev/sda');
  t.equal(await findScsiBlockDevice('1:20', { sysfsRoot: fs.root }), '/dev/sdb');
  t.equal(await findScsiBlockDevice('11:2', { sysfsRoot: fs.root }), '/dev/sdc', 'on another host');
  const e = await rejection(findScsiBlockDevice('3:4', { sysfsRoot: fs.root, timeoutMs: 50 }));
  t.equal(e.code, 'ETIMEDOUT');
  t.equal(e.errno, -110);
  t.match(e.message, /SCSI disk at target:lun 3:4/);
  t.equal(readFileSync(join(fs.root, h0, 'scsi_host/host0/scan'), 'utf8'), '0 3 4');
  t.equal(readFileSync(join(fs.root, h1, 'scsi_host/host1/scan'), 'utf8'), '0 3 4');
  const bad = await rejection(findScsiBlockDevice('1:2:3', { sysfsRoot: fs.root }));
  t.equal(bad.code, 'ERR_INVALID_SCSI_ADDRESS');
  t.equal(bad.value, '1:2:3');
});

t.test('MMIO and pmem on fixture trees', async (t) => {
  const fs = new FakeSysfs(t);
  fs.disk('devices/platform/a003e00.virtio_mmio/virtio3', 'vdb', 1);
  fs.disk('devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0/namespace0.0', 'pmem0');
  fs.disk('devices/platform/e820_pmem/ndbus1/region1/namespace1.0', 'pmem1');
  const sysfsRoot = fs.root;
  t.equal(await findMmioBlockDevice('/dev/vdb', { sysfsRoot }), '/dev/vdb');
  t.equal(
    (await rejection(findMmioBlockDevice('/dev/vdb1', { sysfsRoot, timeoutMs: 30 }))).code,
    'ETIMEDOUT',
    'a partition is not a disk',
  );
  t.equal(await findPmemDevice('/dev/pmem0', { sysfsRoot }), '/dev/pmem0');
  t.equal(await findPmemDevice('/x/pmem0', { sysfsRoot, devRoot: '/x' }), '/x/pmem0');
  t.equal(
    (await rejection(findPmemDevice('/dev/pmem1', { sysfsRoot, timeoutMs: 30 }))).code,
    'ETIMEDOUT',
    'not under LNXSYSTM',
  );
  for (const bad of ['vdb', '/dev/', '/dev/a/b', '/dev/..', '/dev/.', '/other/vdb', '/dev/a\u0000']) {
    const e = await rejection(findMmioBlockDevice(bad));
    t.equal(e.code, 'ERR_INVALID_ARG_VALUE', JSON.stringify(bad));
    t.equal((await rejection(findPmemDevice(bad))).code, 'ERR_INVALID_ARG_VALUE', JSON.stringify(bad));
  }
});

t.test('option checking rejects before anything is touched', async (t) => {
  const before = mountSnapshot();
  const bad: [unknown, string][] = [
    [{ timeoutMs: -1 }, 'ERR_INVALID_ARG_VALUE'],
    [{ timeoutMs: 1.5 }, 'ERR_INVALID_ARG_VALUE'],
    [{ timeoutMs: '10' }, 'ERR_INVALID_ARG_VALUE'],
    [{ signal: {} }, 'ERR_INVALID_ARG_TYPE'],
    [{ sysfsRoot: 'relative' }, 'ERR_INVALID_ARG_VALUE'],
    [{ devRoot: 5 }, 'ERR_INVALID_ARG_TYPE'],
    [{ rescan: 'yes' }, 'ERR_INVALID_ARG_TYPE'],
    ['opts', 'ERR_INVALID_ARG_TYPE'],
  ];
  for (const [opts, code] of bad) {
    const p = findPciBlockDevice('02', opts as never);
    t.type(p, Promise, 'rejects rather than throws');
    t.equal((await rejection(p)).code, code, JSON.stringify(opts));
  }
  t.equal((await rejection(findCcwBlockDevice(5 as unknown as string))).code, 'ERR_INVALID_ARG_TYPE');
  t.equal((await rejection(findScsiBlockDevice('1:2', { timeoutMs: -5 }))).code, 'ERR_INVALID_ARG_VALUE');
  t.equal(mountSnapshot(), before, 'mount table unchanged');
});

t.test('deviceNumber and assertBlockDevice use S_ISBLK', async (t) => {
  const dir = t.testdir({ file: 'x', sub: {} });
  const block = readdirSync('/sys/block').find((n) => existsSync(`/dev/${n}`));
  if (block) {
    const [major, minor] = readFileSync(`/sys/block/${block}/dev`, 'utf8').trim().split(':').map(Number);
    t.same(assertBlockDevice(`/dev/${block}`), { major, minor }, `/dev/${block}`);
    symlinkSync(`/dev/${block}`, join(dir, 'link'));
    t.same(assertBlockDevice(join(dir, 'link')), { major, minor }, 'a symlink to a block device is followed');
  }
  t.same(deviceNumber('/dev/null'), { type: 'char', major: 1, minor: 3 });
  for (const p of ['/dev/null', '/dev', join(dir, 'file'), join(dir, 'sub')]) {
    const e = codeOf(() => assertBlockDevice(p));
    t.equal(e.code, 'ERR_NOT_BLOCK_DEVICE', p);
    t.equal(e.value, p);
  }
  t.equal(codeOf(() => deviceNumber(join(dir, 'file'))).code, 'ERR_NOT_DEVICE_NODE');
  const missing = codeOf(() => assertBlockDevice(join(dir, 'missing')));
  t.equal(missing.code, 'ENOENT');
  t.equal(missing.errno, -2);
  t.equal(missing.syscall, 'stat');
  t.equal(missing.path, join(dir, 'missing'));
  t.equal(codeOf(() => deviceNumber(join(dir, 'missing'))).code, 'ENOENT');
  t.equal(codeOf(() => assertBlockDevice('/dev/a\u0000')).code, 'ERR_INVALID_ARG_VALUE');
  t.equal(codeOf(() => deviceNumber('/dev/a\u0000')).code, 'ERR_INVALID_ARG_VALUE');
  t.equal(codeOf(() => deviceNumber(1 as unknown as string)).code, 'ERR_INVALID_ARG_TYPE');
});

async function waitersSettle(target = 0): Promise<number> {
  for (let i = 0; i < 100 && ueventMonitorState().waiters > target; i++) await new Promise((r) => setTimeout(r, 10));
  return ueventMonitorState().waiters;
}

t.test('timeouts are bounded and name what was awaited', async (t) => {
  const started = Date.now();
  const e = await rejection(findMmioBlockDevice('/dev/kata-never-0', { timeoutMs: 200 }));
  const took = Date.now() - started;
  t.equal(e.code, 'ETIMEDOUT');
  t.equal(e.errno, -110);
  t.equal(e.syscall, 'uevent');
  t.match(
    e.message,
    /after 200 ms waiting for disk kata-never-0 \(\.\.\.\/block\/kata-never-0\); nearest events seen: /,
  );
  t.ok(took >= 190 && took < 1500, `took ${took} ms`);
  t.equal(await waitersSettle(), 0, 'no waiter left registered');
  const zero = Date.now();
  t.equal((await rejection(findMmioBlockDevice('/dev/kata-never-0', { timeoutMs: 0 }))).code, 'ETIMEDOUT');
  t.ok(Date.now() - zero < 500, 'timeoutMs 0 looks once and gives up');
});

t.test('aborts are prompt and free the native waiter', async (t) => {
  const pre = new AbortController();
  pre.abort();
  t.equal(
    (await rejection(findMmioBlockDevice('/dev/kata-never-1', { signal: pre.signal }))).code,
    'ABORT_ERR',
    'already aborted',
  );

  const ac = new AbortController();
  const pending = findMmioBlockDevice('/dev/kata-never-1', { timeoutMs: 60000, signal: ac.signal });
  const started = Date.now();
  setTimeout(() => ac.abort(new Error('changed my mind')), 30);
  const e = await rejection(pending);
  t.equal(e.code, 'ABORT_ERR');
  t.equal(e.name, 'AbortError');
  t.equal((e.cause as Error).message, 'changed my mind');
  t.ok(Date.now() - started < 1000, 'prompt');
  t.equal(await waitersSettle(), 0, 'the native waiter is gone long before its 60 s deadline');

  const late = new AbortController();
  t.equal(
    await findPciBlockDevice('02', { sysfsRoot: new FakeSysfs(t).root, timeoutMs: 0, signal: late.signal }).catch(
      (x: Coded) => x.code,
    ),
    'ETIMEDOUT',
    'timeout with a signal that never fires',
  );
});

t.test('timeouts and aborts leave nothing that keeps the process alive', async (t) => {
  // The child's start-up (a TypeScript loader: seconds on a loaded machine) is not what is measured:
  // only the time from its last result to its exit, which an aborted 60 s wait would hold open.
  const out = execFileSync(
    process.execPath,
    [...process.execArgv, join(__dirname, '..', 'fixtures', 'device-wait-exit.ts')],
    {
      timeout: 120000,
      encoding: 'utf8',
    },
  );
  const exitedAt = Date.now();
  const r = JSON.parse(out) as {
    timedOut: string;
    aborted: string;
    running: boolean;
    elapsedMs: number;
    doneAt: number;
  };
  t.equal(r.timedOut, 'ETIMEDOUT');
  t.equal(r.aborted, 'ABORT_ERR');
  t.ok(r.elapsedMs < 5000, `waits done in ${r.elapsedMs} ms`);
  t.ok(
    exitedAt - r.doneAt < 10000,
    `the child exited on its own ${exitedAt - r.doneAt} ms after its last wait, long before the aborted 60 s wait would have ended`,
  );
});

// LOOP_CTL_ADD / LOOP_CTL_REMOVE through perl's ioctl (perl-base is always on Debian/Ubuntu).
function loopCtl(op: 'add' | 'remove', index: number): { ok: boolean; err: string } {
  const request = op === 'add' ? 0x4c80 : 0x4c81;
  const r = spawnSync(
    'perl',
    [
      '-e',
      `open(my $f, '+<', '/dev/loop-control') or die "open: $!"; defined(ioctl($f, ${request}, ${index})) or die "ioctl: $!";`,
    ],
    {
      encoding: 'utf8',
    },
  );
  return { ok: r.status === 0, err: `${r.stderr ?? ''}${r.error?.message ?? ''}` };
}

const cannotHotplug: string | false =
  process.getuid?.() !== 0
    ? 'needs root to create loop devices'
    : !existsSync('/dev/loop-control')
      ? 'no /dev/loop-control'
      : spawnSync('perl', ['-e', '1']).status !== 0
        ? 'no perl to issue LOOP_CTL_ADD'
        : false;

function freeLoopIndex(): number {
  for (let i = 0; i < 200; i++) {
    const n = 300 + Math.floor(Math.random() * 700);
    if (!existsSync(`/sys/block/loop${n}`) && !existsSync(`/dev/loop${n}`)) return n;
  }
  throw new Error('no free loop index found');
}

t.test("a real hot-plug resolves through the kernel's add uevent", { skip: cannotHotplug }, async (t) => {
  let n = -1;
  t.teardown(() => {
    if (n >= 0) loopCtl('remove', n);
  });
  n = freeLoopIndex();
  const before = ueventMonitorState();
  const node = `/dev/loop${n}`;
  const first = findMmioBlockDevice(node, { timeoutMs: 10000 });
  const second = findMmioBlockDevice(node, { timeoutMs: 10000 });
  // A neighbour's name: its timeout must mention the add we are about to cause.
  const neighbour = findMmioBlockDevice(`/dev/loop${n}9`, { timeoutMs: 1500 });
  for (let i = 0; i < 200 && ueventMonitorState().waiters < before.waiters + 3; i++)
    await new Promise((r) => setTimeout(r, 5));
  t.equal(ueventMonitorState().waiters, before.waiters + 3, 'all three waits are subscribed before the device exists');
  t.equal(ueventMonitorState().running, true, 'the listener started on first need');

  const added = loopCtl('add', n);
  t.ok(added.ok, `LOOP_CTL_ADD loop${n}: ${added.err}`);
  if (!added.ok) {
    n = -1; // not ours to remove: another process may have taken the index
    await Promise.allSettled([first, second, neighbour]);
    return;
  }
  t.same(await Promise.all([first, second]), [node, node], 'both waiters resolved');
  t.ok(ueventMonitorState().matched >= before.matched + 2, 'resolved by the live event, not by a sysfs look');
  t.equal(assertBlockDevice(node).major, 7, 'the node is a loop block device');

  const e = await rejection(neighbour);
  t.equal(e.code, 'ETIMEDOUT');
  t.match(
    e.message,
    new RegExp(`nearest events seen: .*add@/devices/virtual/block/loop${n}\\b`),
    'the near miss is named',
  );

  t.equal(await findMmioBlockDevice(node, { timeoutMs: 0 }), node, 'once there, found without waiting');
  t.ok(loopCtl('remove', n).ok, 'LOOP_CTL_REMOVE');
  n = -1;
});

t.test('a settled wait keeps no handle open', async (t) => {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
  await rejection(findMmioBlockDevice('/dev/kata-never-2', { timeoutMs: 20 }));
  await new Promise((r) => setImmediate(r));
  t.ok(
    (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length <= handles,
    'no new handles',
  );
});

t.test('worker_threads: the addon works per environment; a terminated worker cancels its waits', async (t) => {
  const before = ueventMonitorState().waiters;
  const w = new Worker(join(__dirname, '..', 'fixtures', 'device-worker.ts'));
  const msg = await new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  t.same(msg, {
    slots: [
      { slot: 2, fn: 0 },
      { slot: 3, fn: 0 },
    ],
    waiting: true,
  });
  await w.terminate();
  t.equal(await waitersSettle(before), before, "the worker's 60 s wait ended with it");
});
