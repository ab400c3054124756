// Smoke test of a prebuilt addon on its own architecture: under qemu-user with that arch's Node
// (scripts/ci-prebuilds.sh) and natively on x64. Plain CommonJS on purpose: tap's runner and
// esbuild are host binaries that cannot run under qemu. Needs root, PREBUILDS_ONLY=1 (so the
// prebuild, not a dev build, is what loads) and a mount namespace of its own:
//   PREBUILDS_ONLY=1 unshare -m --propagation private node test/smoke/smoke.js
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
let passed = 0;
let failed = 0;
const cases = [];
const test = (name, fn) => cases.push({ name, fn });

function mountsAt(dir) {
  const unescape = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const [left, right] = line.split(' - ');
      const f = left.split(' ');
      const r = right.split(' ');
      return {
        mountPoint: unescape(f[4]),
        options: f[5].split(','),
        fstype: r[0],
        source: r[1],
        superOptions: r[2].split(','),
      };
    })
    .filter((m) => m.mountPoint === dir);
}

const snapshot = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').replace(/^\d+ \d+ /gm, '');

test('the prebuild for this arch is what loads', () => {
  assert.equal(process.env.PREBUILDS_ONLY, '1', 'run with PREBUILDS_ONLY=1');
  assert.equal(process.env.KATA_STORAGE_ADDON, undefined, 'KATA_STORAGE_ADDON would bypass the prebuild');
  const file = require('node-gyp-build').resolve(root);
  assert.equal(path.dirname(file), path.join(root, 'prebuilds', `linux-${process.arch}`));
});

const ks = require(root);
const { native } = require(path.join(root, 'dist', 'native'));

test('parseMountOptions: Kata vectors and MountFlags', () => {
  const F = ks.MountFlags;
  assert.deepEqual([F.RDONLY, F.NOSUID, F.NODEV, F.BIND, F.REC, F.SHARED], [1, 2, 4, 4096, 16384, 1 << 20]);
  const all = (o) => {
    const p = ks.parseMountOptions(o);
    return [p.flags | p.propagation, p.data];
  };
  assert.deepEqual(all([]), [0, '']);
  assert.deepEqual(all(['ro']), [F.RDONLY, '']);
  assert.deepEqual(all(['ro', 'rw']), [0, '']);
  assert.deepEqual(all(['ro', 'nodev']), [F.RDONLY | F.NODEV, '']);
  assert.deepEqual(all(['option1', 'nodev', 'option2']), [F.NODEV, 'option1,option2']);
  assert.deepEqual(all(['rbind', '', 'ro']), [F.BIND | F.REC | F.RDONLY, '']);
  assert.deepEqual(all(['dev', 'ro', 'defaults', 'data-option']), [F.RDONLY, 'data-option']);
  const p = ks.parseMountOptions(['rshared', 'size="1m,x"', 'nosuid']);
  assert.deepEqual([p.flags, p.propagation, p.data], [F.NOSUID, F.SHARED | F.REC, 'size="1m,x"']);
  assert.throws(() => ks.parseMountOptions(['loop']), { code: 'ERR_INVALID_MOUNT_OPTION', value: 'loop' });
});

test('pciPathToSysfs and findPciBlockDevice walk a fake sysfs tree', async () => {
  const sysfsRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'kata-smoke-sysfs-'));
  const mk = (rel, content) => {
    const p = path.join(sysfsRoot, rel);
    fs.mkdirSync(content === undefined ? p : path.dirname(p), { recursive: true });
    if (content !== undefined) fs.writeFileSync(p, content);
  };
  try {
    const rootBus = path.join(sysfsRoot, 'devices/pci0000:00');
    // A bridge at 02 announcing bus 01 in pci_bus/, a disk behind it at 03 with two partitions.
    mk('devices/pci0000:00/0000:00:02.0/pci_bus/0000:01');
    const disk = 'devices/pci0000:00/0000:00:02.0/0000:01:03.0/virtio4/block/vdc';
    mk(`${disk}/dev`, '254:32\n');
    mk(`${disk}/vdc1/partition`, '1\n');
    mk(`${disk}/vdc2/partition`, '2\n');
    // A bridge at 05 without pci_bus/: its bus is that of its child devices (07).
    mk('devices/pci0000:00/0000:00:05.0/0000:07:00.0');
    assert.equal(ks.pciPathToSysfs('02/03', { sysfsRoot }), `${rootBus}/0000:00:02.0/0000:01:03.0`);
    assert.equal(ks.pciPathToSysfs('05/01.2', { sysfsRoot }), `${rootBus}/0000:00:05.0/0000:07:01.2`);
    assert.equal(await ks.findPciBlockDevice('02/03', { sysfsRoot, timeoutMs: 0 }), '/dev/vdc');
    assert.deepEqual(ks.parsePciPath('02/03.7'), [
      { slot: 2, fn: 0 },
      { slot: 3, fn: 7 },
    ]);
    assert.throws(() => ks.pciPathToSysfs('20', { sysfsRoot }), { code: 'ERR_INVALID_PCI_PATH', value: '20' });
    assert.throws(() => ks.pciPathToSysfs('09/01', { sysfsRoot }), { code: 'ERR_SYSFS' });
  } finally {
    fs.rmSync(sysfsRoot, { recursive: true, force: true });
  }
});

test('device numbers from stat (struct stat layout on this arch)', () => {
  assert.deepEqual(ks.deviceNumber('/dev/null'), { type: 'char', major: 1, minor: 3 });
  assert.throws(() => ks.assertBlockDevice('/dev/null'), { code: 'ERR_NOT_BLOCK_DEVICE', value: '/dev/null' });
  assert.throws(() => ks.assertBlockDevice('/proc'), { code: 'ERR_NOT_BLOCK_DEVICE' });
  assert.throws(() => ks.deviceNumber('/nonexistent/kata'), { code: 'ENOENT' });
});

test('a C++ exception thrown in the addon unwinds (static libgcc unwinder)', () => {
  // The binding throws Napi::TypeError as a C++ exception for a wrong argument type; this is the
  // path that needs the unwinder to find the addon's .eh_frame (the _dl_find_object wrapper).
  assert.throws(
    () => native.mountSync(1, '/x', 'tmpfs', ''),
    (e) => e instanceof TypeError && /must be a string/.test(e.message),
  );
});

test('tmpfs mount and unmount, checked in mountinfo', async () => {
  assert.equal(process.getuid(), 0, 'needs root');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kata-smoke-'));
  try {
    const before = snapshot();
    // Refused input changes nothing.
    assert.throws(() => ks.mountSync('tmpfs', dir, 'tmpfs', ['loop']), { code: 'ERR_INVALID_MOUNT_OPTION' });
    // The syscall named depends on the mount API the kernel (or qemu-user) offers.
    assert.throws(() => ks.mountSync('tmpfs', path.join(dir, 'missing'), 'tmpfs', []), {
      code: 'ENOENT',
      errno: -2,
      syscall: /^(mount|move_mount|fsmount|fsconfig|fsopen|open_tree)$/,
    });
    assert.equal(snapshot(), before);

    ks.mountSync('tmpfs', dir, 'tmpfs', ['nodev,nosuid', 'size=1m', 'mode=700']);
    const [m] = mountsAt(dir);
    assert.ok(m, 'mounted');
    assert.equal(m.fstype, 'tmpfs');
    assert.ok(m.options.includes('nodev') && m.options.includes('nosuid'), m.options.join(','));
    assert.ok(m.superOptions.includes('size=1024k') && m.superOptions.includes('mode=700'), m.superOptions.join(','));
    assert.equal(ks.isMountPoint(dir), true);
    fs.writeFileSync(path.join(dir, 'f'), 'on tmpfs');
    ks.umountSync(dir);
    assert.deepEqual(mountsAt(dir), []);
    assert.equal(fs.existsSync(path.join(dir, 'f')), false);

    // The async forms run on the addon's own threads (pthread_create, condition variables).
    await Promise.all([
      ks.mount('tmpfs', dir, 'tmpfs', ['ro', 'size=2m']),
      ks.mount('tmpfs', dir, 'tmpfs', ['size=3m']),
    ]);
    assert.equal(mountsAt(dir).length, 2);
    await ks.umount(dir);
    await ks.umount(dir);
    assert.deepEqual(mountsAt(dir), []);
    await assert.rejects(ks.umount(dir), { code: 'EINVAL', syscall: 'umount2' });
    assert.equal(snapshot(), before);
  } finally {
    while (mountsAt(dir).length) ks.umountSync(dir, { detach: true });
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

(async () => {
  console.log(
    `# kata-storage smoke test: Node ${process.version} ${process.platform}-${process.arch}, ` +
      `${os.endianness()}, Node-API ${process.versions.napi}`,
  );
  for (const { name, fn } of cases) {
    try {
      await fn();
      passed++;
      console.log(`ok ${passed + failed} - ${name}`);
    } catch (err) {
      failed++;
      console.log(`not ok ${passed + failed} - ${name}`);
      console.log(String(err && err.stack ? err.stack : err).replace(/^/gm, '  # '));
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed === 0 && passed === cases.length ? 0 : 1;
})();
