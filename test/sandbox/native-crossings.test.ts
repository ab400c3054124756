// How often one storage request crosses between JS and native: every call into the
// addon, and every asynchronous completion coming back, for one blk storage (PCI path through a
// sysfs tree, a real ext4 loop device) with fsGroup, added and released through Sandbox. The
// loaded addon's functions are wrapped in counting functions; nothing is faked.
import t from 'tap';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox } from '../../lib/index';
import { native } from '../../lib/native';
import { cannotMount, mountAt, mountSnapshot, scratchDir } from '../helpers/mountinfo';
import { attachLoop } from '../helpers/loop';
import { treeSnapshot } from '../helpers/tree';

/** Counts the calls into the addon (`in`) and the promises it settles (`back`), by export name. */
function countCrossings(t: { teardown(fn: () => void): void }): { calls: string[]; total(): number } {
  const calls: string[] = [];
  const target = native as unknown as Record<string, unknown>;
  for (const [name, fn] of Object.entries(target)) {
    if (typeof fn !== 'function') continue;
    target[name] = function counted(this: unknown, ...args: unknown[]): unknown {
      calls.push(`${name}`);
      const r = (fn as (...a: unknown[]) => unknown).apply(this, args);
      if (r instanceof Promise) return r.finally(() => calls.push(`${name} (completion)`));
      if (Array.isArray(r) && r[1] instanceof Promise) {
        r[1] = r[1].finally(() => calls.push(`${name} (completion)`));
      }
      return r;
    };
    t.teardown(() => void (target[name] = fn));
  }
  return { calls, total: () => calls.length };
}

// The budget this test holds the request path to. Before requests became one native job: add 13 (10 calls, 3
// completions), release 6 (3 calls, 3 completions); the prepared request (options parsed once,
// fsGroup reading the parsed flags) took add to 12, one native job for the mount point and its
// mount to 10, and that job applying fsGroup too to 8; release, one job for the unmount and the
// paths, to 2; the disk made by the request's one job (its node checked there) rather than by
// create(), to 5: the options and PCI path parsed at validation, the device looked up, the job and
// its completion. (A request of ephemeral storages, test/sandbox/native-job.test.ts: one job to
// add, one to release, whatever their number.)
const ADD_BUDGET = 5;
const RELEASE_BUDGET = 2;

t.test('one blk storage with fsGroup: JS <-> native crossings', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const dev = attachLoop(t, { ext4: true });
  const sysfsRoot = scratchDir(t, 'kata-storage-sys-');
  mkdirSync(join(sysfsRoot, 'devices', 'pci0000:00', '0000:00:02.0', 'virtio9', 'block', dev.slice('/dev/'.length)), {
    recursive: true,
  });
  const before = mountSnapshot();
  const tree = treeSnapshot(root);
  const sb = new Sandbox({ allowedRoots: [root], sysfsRoot });
  const mountPoint = join(root, 'disks', 'data');
  const storage = {
    driver: 'blk',
    source: '02',
    fstype: 'ext4',
    options: ['nodev'],
    mountPoint,
    fsGroup: { groupId: 4321 },
  };

  const add = countCrossings(t);
  await sb.addStorages([storage], { containerId: 'c' });
  const added = [...add.calls];
  t.equal(mountAt(mountPoint)?.source, dev, 'mounted the device the PCI path resolved to');
  t.equal(statSync(mountPoint).gid, 4321, 'fsGroup applied');
  add.calls.length = 0;
  await sb.removeContainer('c');
  const released = [...add.calls];
  t.equal(mountSnapshot(), before, 'released: nothing left mounted');
  t.equal(treeSnapshot(root), tree, 'and nothing left behind');

  t.comment(`add: ${added.length} crossings: ${added.join(', ')}`);
  t.comment(`release: ${released.length} crossings: ${released.join(', ')}`);
  t.ok(added.length <= ADD_BUDGET, `add crosses ${added.length} times (budget ${ADD_BUDGET})`);
  t.ok(released.length <= RELEASE_BUDGET, `release crosses ${released.length} times (budget ${RELEASE_BUDGET})`);
});

t.test('two blk disks of one container: one job to add, one to release', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const sysfsRoot = scratchDir(t, 'kata-storage-sys-');
  const devs = [attachLoop(t, { ext4: true }), attachLoop(t, { ext4: true })];
  devs.forEach((dev, i) =>
    mkdirSync(
      join(sysfsRoot, 'devices', 'pci0000:00', `0000:00:0${i + 2}.0`, `virtio${i + 9}`, 'block', dev.slice(5)),
      { recursive: true },
    ),
  );
  const before = mountSnapshot();
  const tree = treeSnapshot(root);
  const sb = new Sandbox({ allowedRoots: [root], sysfsRoot });
  const storages = devs.map((_, i) => ({
    driver: 'blk',
    source: `0${i + 2}`,
    fstype: 'ext4',
    options: ['nodev'],
    mountPoint: join(root, 'disks', `d${i}`),
  }));
  const add = countCrossings(t);
  await sb.addStorages(storages, { containerId: 'c' });
  const added = [...add.calls];
  devs.forEach((dev, i) => t.equal(mountAt(storages[i]!.mountPoint)?.source, dev, `disk ${i} mounted`));
  add.calls.length = 0;
  await sb.removeContainer('c');
  const released = [...add.calls];
  t.equal(mountSnapshot(), before, 'released: nothing left mounted');
  t.equal(treeSnapshot(root), tree, 'and nothing left behind');
  t.comment(`add: ${added.join(', ')}`);
  t.comment(`release: ${released.join(', ')}`);
  t.equal(added.filter((c) => c === 'applyStorages').length, 1, 'both disks made by one job');
  t.same(released, ['releaseStorages', 'releaseStorages (completion)'], 'and released by one job');
});
