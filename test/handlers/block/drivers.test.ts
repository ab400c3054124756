import t from 'tap';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, type MkfsEvent, type Storage, type WaitEvent } from '../../../lib/index';
import { listen } from '../../helpers/events';
import { cannotMount, mountAt, mountSnapshot, scratchDir } from '../../helpers/mountinfo';
import { attachLoop, createLoopLater, unusedLoopNumber } from '../../helpers/loop';
import { treeSnapshot } from '../../helpers/tree';

/** A sysfs tree in which PCI path 02 is a virtio-blk disk named `name` (this VM has no hot-plug). */
function pciSysfs(t: Parameters<typeof scratchDir>[0], name: string): string {
  const sys = scratchDir(t, 'kata-storage-sys-');
  mkdirSync(join(sys, 'devices', 'pci0000:00', '0000:00:02.0', 'virtio9', 'block', name), { recursive: true });
  return sys;
}

const ephemeral = (mountPoint: string): Storage => ({
  driver: 'ephemeral',
  source: 'tmpfs',
  fstype: 'tmpfs',
  options: ['size=1m'],
  mountPoint,
});

t.test('block drivers for real', { skip: cannotMount }, async (t) => {
  t.test('two containers share ephemeral + local + blk (PCI path through a sysfs tree)', async (t) => {
    const root = scratchDir(t);
    const dev = attachLoop(t, { ext4: true });
    const sysfsRoot = pciSysfs(t, dev.slice('/dev/'.length));
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const sb = new Sandbox({ allowedRoots: [root], sysfsRoot });
    const disk = join(root, 'disks', 'data');
    const req: Storage[] = [
      ephemeral(join(root, 'shm')),
      {
        driver: 'local',
        source: 'local',
        fstype: 'local',
        mountPoint: join(root, 'empty'),
        options: ['mode=0770', 'fsgid=1234'],
      },
      { driver: 'blk', source: '02', fstype: 'ext4', options: ['nodev'], mountPoint: disk },
    ];
    await sb.addStorages(req, { containerId: 'a' });
    await sb.addStorages(req, { containerId: 'b' });
    const m = mountAt(disk)!;
    t.equal(m.fstype, 'ext4');
    t.equal(m.source, dev, 'the device the PCI path resolved to');
    t.equal(sb.refcount(disk), 2);
    const st = statSync(join(root, 'empty'));
    t.equal(st.gid, 1234, 'local fsgid=');
    t.equal(st.mode & 0o7777, 0o2770, 'local mode= with setgid for fsgid');
    writeFileSync(join(disk, 'hello'), 'on ext4');
    await sb.removeContainer('a');
    t.equal(readFileSync(join(disk, 'hello'), 'utf8'), 'on ext4', 'still there for b');
    await sb.removeContainer('b');
    t.equal(mountSnapshot(), before, 'last one out unmounted everything');
    t.equal(treeSnapshot(root), tree, 'and removed what it created');
  });

  t.test('create_filesystem makes ext4 on a blank loop device', async (t) => {
    const root = scratchDir(t);
    const dev = attachLoop(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const p = join(root, 'fresh');
    const events = listen<MkfsEvent>(t, 'kata-storage:mkfs');
    await sb.addStorages(
      [{ driver: 'blk', source: dev, fstype: 'ext4', driverOptions: ['create_filesystem'], mountPoint: p }],
      { containerId: 'c' },
    );
    t.equal(mountAt(p)?.fstype, 'ext4');
    t.equal(events.length, 1);
    t.equal(events[0]!.device, dev);
    t.ok(events[0]!.durationMs > 0, `mkfs took ${events[0]!.durationMs} ms`);
    writeFileSync(join(p, 'x'), 'y');
    await sb.removeContainer('c');
    t.equal(mountAt(p), undefined);
  });

  t.test('fstype bind binds the device node onto a file (vhost-user-blk)', async (t) => {
    const root = scratchDir(t);
    const dev = attachLoop(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const p = join(root, 'devs', 'vdb');
    await sb.addStorages([{ driver: 'blk', source: dev, fstype: 'bind', mountPoint: p }], { containerId: 'c' });
    t.ok(mountAt(p), 'bound');
    t.ok(statSync(p).isBlockDevice(), 'the mount point is now the block device');
    t.equal(statSync(p).rdev, statSync(dev).rdev);
    await sb.removeContainer('c');
    t.equal(mountAt(p), undefined);
    t.notOk(existsSync(p), 'the bind target file is removed');
    t.notOk(existsSync(join(root, 'devs')));
  });

  t.test('mmioblk waits for a loop device created later', async (t) => {
    const root = scratchDir(t);
    const n = unusedLoopNumber();
    const sb = new Sandbox({ allowedRoots: [root], hotplugTimeoutMs: 10000 });
    const p = join(root, 'mmio');
    const waits = listen<WaitEvent>(t, 'kata-storage:wait');
    const pending = sb.addStorages([{ driver: 'mmioblk', source: `/dev/loop${n}`, fstype: 'ext4', mountPoint: p }], {
      containerId: 'c',
    });
    await new Promise((r) => setTimeout(r, 300));
    t.equal(mountAt(p), undefined, 'nothing mounted while the device is missing');
    createLoopLater(t, n);
    t.same(await pending, [p]);
    t.equal(mountAt(p)?.source, `/dev/loop${n}`);
    t.equal(waits.length, 1);
    t.ok(waits[0]!.durationMs >= 250, `waited ${waits[0]!.durationMs} ms`);
    await sb.removeContainer('c');
    t.equal(mountAt(p), undefined);
  });

  t.test('block bad input and missing devices change nothing', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root], hotplugTimeoutMs: 200 });
    const ok = ephemeral(join(root, 'ok'));
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    // Every bad storage targets the same mount point; ext4 unless the case is about the fstype.
    const bad = (s: Omit<Storage, 'fstype' | 'mountPoint'> & { fstype?: string }): Storage => ({
      fstype: 'ext4',
      ...s,
      mountPoint: join(root, 'a'),
    });
    const cases: [string, Storage, string][] = [
      ['bad PCI path', bad({ driver: 'blk', source: '02/zz' }), 'ERR_INVALID_PCI_PATH'],
      ['bad CCW id', bad({ driver: 'blk-ccw', source: '1.2' }), 'ERR_INVALID_CCW_DEVICE'],
      ['bad SCSI address', bad({ driver: 'scsi', source: '0-1' }), 'ERR_INVALID_SCSI_ADDRESS'],
      ['mmio not a node', bad({ driver: 'mmioblk', source: 'vdb' }), 'ERR_INVALID_STORAGE'],
      [
        'ephemeral encryption',
        bad({ driver: 'blk', source: '/dev/vda', driverOptions: ['create_filesystem', 'encryption_key=ephemeral'] }),
        'ERR_INVALID_MOUNT_OPTION',
      ],
      [
        'mkfs of xfs',
        bad({ driver: 'blk', source: '/dev/vda', fstype: 'xfs', driverOptions: ['create_filesystem'] }),
        'ERR_INVALID_MOUNT_OPTION',
      ],
      [
        'unknown driver option',
        bad({ driver: 'blk', source: '/dev/vda', driverOptions: ['turbo'] }),
        'ERR_INVALID_MOUNT_OPTION',
      ],
      ['char device', bad({ driver: 'blk', source: '/dev/null' }), 'ERR_NOT_BLOCK_DEVICE'],
      ['directory', bad({ driver: 'blk', source: '/dev' }), 'ERR_NOT_BLOCK_DEVICE'],
      ['missing PCI disk', bad({ driver: 'blk', source: '1f' }), 'ETIMEDOUT'],
      ['missing mmio disk', bad({ driver: 'mmioblk', source: `/dev/loop${unusedLoopNumber()}` }), 'ETIMEDOUT'],
    ];
    for (const [name, storage, code] of cases) {
      const err = (await sb.addStorages([ok, storage], { containerId: 'c' }).catch((e: Error) => e)) as Error & {
        code?: string;
      };
      t.equal(err.code, code, `${name}: ${err.message}`);
    }
    t.equal(mountSnapshot(), before, 'nothing mounted');
    t.equal(treeSnapshot(root), tree, 'no directory left');
    t.equal(sb.storages().size, 0);
  });
});
