// erofs.multi-layer: Kata's multi-layer EROFS rootfs assembled from real EROFS images (mkfs.erofs)
// and an ext4 upper layer on loop devices.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MULTI_LAYER_DRIVER,
  MultiLayerMarkers as M,
  Sandbox,
  defaultRegistry,
  groupMultiLayer,
  newMountApiSupport,
  parseMountOptions,
  type Storage,
} from '../../lib/index';
import { attachImage, attachLoop } from '../helpers/loop';
import { cannotMount, mountAt, mountSnapshot, readMountinfo, scratchDir } from '../helpers/mountinfo';
import { treeSnapshot } from '../helpers/tree';

type Teardown = { teardown(fn: () => void): void };
const haveMkfsErofs = spawnSync('mkfs.erofs', ['--help']).error === undefined;
const erofsInKernel = existsSync('/proc/filesystems') && /\berofs\b/.test(readFileSync('/proc/filesystems', 'utf8'));
const cannot =
  cannotMount ||
  (!haveMkfsErofs && 'mkfs.erofs missing (apt-get install erofs-utils)') ||
  (!erofsInKernel && 'kernel has no erofs');

/** A loop device over an EROFS image of `files`, detached at teardown. */
function erofsLoop(t: Teardown, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'kata-storage-erofs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tree = join(dir, 'tree');
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(join(tree, p, '..'), { recursive: true });
    writeFileSync(join(tree, p), content);
  }
  mkdirSync(tree, { recursive: true });
  const img = join(dir, 'layer.erofs');
  execFileSync('mkfs.erofs', ['--quiet', img, tree]);
  return attachImage(t, img, { readOnly: true });
}

/** `n` loop devices over EROFS images, layer i holding `layer-i` and `top` (both "i"). */
function erofsLoops(t: Teardown, n: number): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'kata-storage-erofs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return Array.from({ length: n }, (_, i) => {
    const tree = join(dir, `tree-${i}`);
    mkdirSync(tree);
    writeFileSync(join(tree, `layer-${i}`), `${i}`);
    writeFileSync(join(tree, 'top'), `${i}`);
    const img = join(dir, `layer-${i}.erofs`);
    execFileSync('mkfs.erofs', ['--quiet', img, tree]);
    return attachImage(t, img, { readOnly: true });
  });
}

// A container id as containerd makes them: 64 hex digits.
const hexId = (seed: string): string => createHash('sha256').update(seed).digest('hex');

// A blk storage marked as one layer of a multi-layer rootfs: the ext4 upper or an EROFS lower.
const layer =
  (fstype: string, marker: string) =>
  (dev: string, mountPoint: string, extra: string[] = []): Storage => ({
    driver: 'blk',
    source: dev,
    fstype,
    options: [marker, M.multiLayer, ...extra],
    mountPoint,
  });
const upper = layer('ext4', M.upper);
const lower = layer('erofs', M.lower);

t.test('grouping: marked storages become one erofs.multi-layer storage at the upper mount point', async (t) => {
  t.ok(defaultRegistry().has(MULTI_LAYER_DRIVER));
  const other: Storage = {
    driver: 'ephemeral',
    source: 'shm',
    fstype: 'tmpfs',
    mountPoint: '/run/kata-containers/shm',
  };
  const u = upper('/dev/vdb', '/run/kata-containers/c/rootfs');
  const l = lower('/dev/vdc', '/run/kata-containers/c/rootfs');
  const g = groupMultiLayer([other, l, u]);
  t.equal(g.length, 2);
  t.equal(g[0], other);
  t.match(g[1], { driver: MULTI_LAYER_DRIVER, mountPoint: '/run/kata-containers/c/rootfs', layers: [l, u] });
  t.same(groupMultiLayer([other]), [other], 'no markers: unchanged');
});

// The request: 45 lowers and an upper under /run/kata-containers/<64-hex id>.
t.test('the overlay data of 45 layers, over a page, accepted as its layers relative to their directory', async (t) => {
  const base = `/run/kata-containers/${hexId('45')}/multi-layer`;
  const data = [
    `upperdir=${base}/upper/upper`,
    `lowerdir=${Array.from({ length: 45 }, (_, i) => `${base}/lower-${i}`).join(':')}`,
    `workdir=${base}/upper/work`,
  ];
  t.ok(data.join(',').length > 4096, `${data.join(',').length} bytes`);
  t.equal(parseMountOptions(data).data, data.join(','), 'the data is unchanged: the mount makes it relative');
});

t.test('erofs.multi-layer for real', { skip: cannot }, async (t) => {
  t.test('upper ext4 + two EROFS lowers = one overlay; mkdir directives; release undoes all', async (t) => {
    const root = scratchDir(t);
    const up = attachLoop(t, { ext4: true });
    const l0 = erofsLoop(t, { 'a.txt': 'from lower 0', 'shared.txt': 'lower 0 wins', 'etc/conf': 'c' });
    const l1 = erofsLoop(t, { 'b.txt': 'from lower 1', 'shared.txt': 'lower 1 loses' });
    const rootfs = join(root, 'c1', 'rootfs');
    const before = mountSnapshot();
    const sb = new Sandbox({ allowedRoots: [root] });
    const held = await sb.addStorages(
      [
        upper(up, rootfs),
        lower(l0, rootfs, [`${M.mkdirPath}{{ mount 0 }}/upper/var/run:0755`, `${M.mkdirPath}{{ mount 1 }}/etc`]),
        lower(l1, rootfs),
      ],
      { containerId: 'c1' },
    );
    t.same(held, [rootfs]);
    t.equal(sb.refcount(rootfs), 1, 'one storage held for the whole group');
    const base = join(root, 'c1', 'multi-layer');
    const ov = mountAt(rootfs)!;
    t.equal(ov.fstype, 'overlay');
    t.ok(
      ov.superOptions.includes(`lowerdir=${join(base, 'lower-0')}:${join(base, 'lower-1')}`),
      ov.superOptions.join(','),
    );
    t.ok(ov.superOptions.includes(`upperdir=${join(base, 'upper', 'upper')}`));
    t.equal(mountAt(join(base, 'upper'))?.fstype, 'ext4');
    t.equal(mountAt(join(base, 'lower-0'))?.fstype, 'erofs');
    t.ok(mountAt(join(base, 'lower-0'))!.mountOptions.includes('ro'), 'lowers read-only');
    t.equal(readFileSync(join(rootfs, 'a.txt'), 'utf8'), 'from lower 0');
    t.equal(readFileSync(join(rootfs, 'b.txt'), 'utf8'), 'from lower 1');
    t.equal(readFileSync(join(rootfs, 'shared.txt'), 'utf8'), 'lower 0 wins', 'the first lower has priority');
    t.ok(statSync(join(rootfs, 'var', 'run')).isDirectory(), 'mkdir directive made in the upper layer');
    writeFileSync(join(rootfs, 'written'), 'rw');
    t.equal(readFileSync(join(base, 'upper', 'upper', 'written'), 'utf8'), 'rw', 'writes land on the ext4 upper');
    t.notOk(
      readMountinfo().some((m) => [...m.mountOptions, ...m.superOptions].some((o) => o.startsWith('X-kata'))),
      'no marker word reached the kernel',
    );
    await sb.removeContainer('c1');
    t.equal(mountSnapshot(), before, 'every mount gone, in reverse');
    t.equal(treeSnapshot(root), '', 'every directory we made gone');
    // The upper layer is the container's disk: what was written is still on it.
    const check = scratchDir(t);
    execFileSync('mount', ['-o', 'ro', up, check]);
    t.equal(readFileSync(join(check, 'upper', 'written'), 'utf8'), 'rw');
    t.ok(statSync(join(check, 'upper', 'var', 'run')).isDirectory());
    execFileSync('umount', [check]);
  });

  t.test('without an upper storage: a directory-backed upper at the first lower mount point', async (t) => {
    const root = scratchDir(t);
    const l0 = erofsLoop(t, { x: 'x' });
    const rootfs = join(root, 'c2', 'rootfs');
    const sb = new Sandbox({ allowedRoots: [root] });
    await sb.addStorages([lower(l0, rootfs)], { containerId: 'c2' });
    t.equal(mountAt(rootfs)?.fstype, 'overlay');
    writeFileSync(join(rootfs, 'y'), 'y');
    await sb.removeContainer('c2');
    t.equal(treeSnapshot(root), '');
  });

  t.test('a layer that fails to mount rolls back everything before it', async (t) => {
    const root = scratchDir(t);
    const up = attachLoop(t, { ext4: true });
    const l0 = erofsLoop(t, { a: 'a' });
    const notErofs = attachLoop(t, { ext4: true });
    const rootfs = join(root, 'c3', 'rootfs');
    const before = mountSnapshot();
    const sb = new Sandbox({ allowedRoots: [root] });
    await t.rejects(
      sb.addStorages(
        [
          { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'shm') },
          upper(up, rootfs),
          lower(l0, rootfs),
          lower(notErofs, rootfs),
        ],
        {
          containerId: 'c3',
        },
      ),
      { code: 'EINVAL' },
    );
    t.equal(mountSnapshot(), before, 'upper, lower-0 and the earlier tmpfs unmounted');
    t.equal(treeSnapshot(root), '', 'no directory left');
    t.equal(sb.storages().size, 0);
  });

  // Every layer's path repeats <root>/<64-hex id>/multi-layer/: 45 layers already overflow the
  // page mount(2) copies. 128 real EROFS layers, on each mount API.
  t.test('128 EROFS layers under a 64-hex container id mount on both mount APIs', async (t) => {
    const layers = erofsLoops(t, 128);
    const apis = newMountApiSupport().complete ? (['legacy', 'new'] as const) : (['legacy'] as const);
    if (apis.length === 1) t.comment('the new mount API is not available here: legacy only');
    for (const mountApi of apis) {
      const root = scratchDir(t);
      const id = hexId(mountApi);
      const rootfs = join(root, id, 'rootfs');
      const base = join(root, id, 'multi-layer');
      const up = attachLoop(t, { ext4: true });
      const absolute = layers.map((_, i) => join(base, `lower-${i}`));
      t.ok(
        `upperdir=${base}/upper/upper,lowerdir=${absolute.join(':')},workdir=${base}/upper/work`.length > 3 * 4096,
        'the data with absolute layers is over three pages',
      );
      const before = mountSnapshot();
      const cwd = process.cwd();
      const sb = new Sandbox({ allowedRoots: [root], mountApi });
      const held = await sb.addStorages([upper(up, rootfs), ...layers.map((dev) => lower(dev, rootfs))], {
        containerId: id,
      });
      t.same(held, [rootfs], mountApi);
      t.equal(sb.refcount(rootfs), 1);
      const ov = mountAt(rootfs)!;
      t.equal(ov.fstype, 'overlay');
      if (mountApi === 'legacy') {
        // mount(2) got the layers relative to the multi-layer directory, in priority order.
        const relative = layers.map((_, i) => `lower-${i}`).join(':');
        t.ok(ov.superOptions.includes(`lowerdir=${relative}`), 'legacy: one lowerdir= of relative names');
      } else {
        t.same(
          ov.superOptions.filter((o) => o.startsWith('lowerdir')),
          absolute.map((p) => `lowerdir+=${p}`),
          'new: one lowerdir+= per layer, in priority order',
        );
      }
      const erofs = readMountinfo().filter((m) => m.fstype === 'erofs' && m.mountPoint.startsWith(`${base}/`));
      t.equal(erofs.length, 128, 'every layer mounted read-only');
      t.ok(erofs.every((m) => m.mountOptions.includes('ro')));
      const missing = layers.filter((_, i) => readFileSync(join(rootfs, `layer-${i}`), 'utf8') !== `${i}`);
      t.same(missing, [], "every layer's file is in the overlay");
      t.equal(readFileSync(join(rootfs, 'top'), 'utf8'), '0', 'the first lower wins');
      writeFileSync(join(rootfs, 'written'), mountApi);
      t.equal(readFileSync(join(base, 'upper', 'upper', 'written'), 'utf8'), mountApi, 'writes land on the upper');
      t.equal(process.cwd(), cwd, "the process's working directory never moved");
      await sb.removeContainer(id);
      t.equal(mountSnapshot(), before, 'all 130 mounts gone');
      t.equal(treeSnapshot(root), '', 'every directory we made gone');
    }
  });

  t.test('bad groups are refused before anything is touched', async (t) => {
    const root = scratchDir(t);
    const rootfs = join(root, 'c', 'rootfs');
    const sb = new Sandbox({ allowedRoots: [root] });
    const before = mountSnapshot();
    const cases: [string, Storage[], { code: string; field?: string; value?: unknown }][] = [
      [
        'two uppers',
        [upper('/dev/vdb', rootfs), upper('/dev/vdc', rootfs), lower('/dev/vdd', rootfs)],
        { code: 'ERR_INVALID_STORAGE', field: 'options' },
      ],
      ['no lower', [upper('/dev/vdb', rootfs)], { code: 'ERR_INVALID_STORAGE', field: 'options' }],
      [
        'upper marker on xfs',
        [{ ...upper('/dev/vdb', rootfs), fstype: 'xfs' }, lower('/dev/vdc', rootfs)],
        { code: 'ERR_INVALID_STORAGE', field: 'fstype', value: 'xfs' },
      ],
      [
        'lower through virtio-fs',
        [{ ...lower('kataShared', rootfs), driver: 'virtio-fs' }],
        { code: 'ERR_INVALID_STORAGE', field: 'driver', value: 'virtio-fs' },
      ],
      ['bad PCI path', [lower('zz/zz', rootfs)], { code: 'ERR_INVALID_PCI_PATH' }],
      [
        'mkdir escape',
        [lower('/dev/vdc', rootfs, [`${M.mkdirPath}{{ mount 0 }}/../../etc`])],
        { code: 'ERR_INVALID_MOUNT_OPTION' },
      ],
      ['empty mkdir', [lower('/dev/vdc', rootfs, [M.mkdirPath])], { code: 'ERR_INVALID_MOUNT_OPTION' }],
      ['GPT without a partition', [lower('/dev/vdc', rootfs, [M.gptPartitioned])], { code: 'ERR_INVALID_STORAGE' }],
      [
        'bad partition number',
        [lower('/dev/vdc', rootfs, [M.gptPartitioned, `${M.partitionNumber}x`])],
        { code: 'ERR_INVALID_MOUNT_OPTION' },
      ],
      ['dm-verity marker', [lower('/dev/vdc', rootfs, [M.dmverityEnabled])], { code: 'ERR_INVALID_MOUNT_OPTION' }],
      [
        'neither upper nor lower',
        [{ driver: 'blk', source: '/dev/vdc', fstype: 'xfs', options: [M.multiLayer], mountPoint: rootfs }],
        { code: 'ERR_INVALID_STORAGE' },
      ],
      [
        'driver alone',
        [{ driver: MULTI_LAYER_DRIVER, source: '/dev/vdc', fstype: 'erofs', mountPoint: rootfs }],
        { code: 'ERR_INVALID_STORAGE' },
      ],
      [
        'member outside the roots',
        [lower('/dev/vdc', rootfs), lower('/dev/vdd', '/etc/x')],
        { code: 'ERR_INVALID_STORAGE', field: 'mountPoint' },
      ],
    ];
    // More layers than a page holds even by their names relative to the multi-layer directory:
    // refused before any disk is waited for, with the data.
    const tooMany = Array.from({ length: 450 }, (_, i) => lower(`/dev/vd${i}`, rootfs));
    cases.push(['450 layers', tooMany, { code: 'ERR_MOUNT_OPTIONS_TOO_LONG' }]);
    for (const [name, storages, err] of cases)
      await t.rejects(sb.addStorages(storages, { containerId: 'c' }), err, name);
    await t.rejects(sb.addStorages([lower('/dev/vdc', rootfs)], { containerId: '../x' }), {
      code: 'ERR_INVALID_STORAGE',
      field: 'containerId',
    });
    t.equal(mountSnapshot(), before);
    t.equal(treeSnapshot(root), '');
  });
});
