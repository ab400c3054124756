'use strict';
// The guest's initramfs: busybox, node and mke2fs (or a foreign arch's whole Node sysroot), the
// package as npm installs it, the guest agent and the child agent it kills and restarts, and the
// kernel modules the scenarios need with their dependencies, in load order; its /init loads them
// and runs the agent.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { repo, sh } = require('./shell');

// The modules the scenarios load (buses, disks, filesystems, dm-verity, NVDIMM); each is looked up
// with its dependencies, and one this kernel lacks is left out.
const MODULES = [
  'crc32c_generic',
  'virtio_pci',
  'virtio_mmio',
  'virtio_blk',
  'virtio_scsi',
  'sd_mod',
  'ext4',
  'overlay',
  '9pnet_virtio',
  '9p',
  'virtiofs',
  'nfit',
  'nd_pmem',
  'dm_verity',
  'erofs',
];

/** Copies `file` (and, for a binary, every library ldd names) into `root` at the same path. */
function copyWithLibs(root, file) {
  const files = new Set([file]);
  let ldd = '';
  try {
    ldd = sh('ldd', [file]);
  } catch {
    // static
  }
  for (const m of ldd.matchAll(/(\/\S+) \(0x/g)) files.add(m[1]);
  for (const f of files) {
    const dst = path.join(root, f);
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    fs.copyFileSync(fs.realpathSync(f), dst);
    fs.chmodSync(dst, 0o755);
  }
}

/**
 * The guest's initramfs `<work>/<name>.initrd` (built in `<work>/<name>.root`, removed after) for
 * the kernel unpacked in `kroot`; returns { initrd, vmlinuz, kver }.
 * x86-64 guests get this machine's node, busybox and mke2fs with their libraries and the addon
 * from build/Release; a foreign guest (`sysroot`: Debian's Node for that arch, unpacked by
 * scripts/qemu-sysroot.sh) gets that whole tree, busybox-static from the kernel's cache dir and
 * the package's prebuild for its arch (prebuilds/linux-<arch>, from `npm run prebuild -- <arch>`).
 */
function buildInitramfs(work, name, kroot, sysroot, arch) {
  const kver = fs.readdirSync(path.join(kroot, 'lib/modules'))[0];
  const vmlinuz = path.join(kroot, 'boot', `vmlinuz-${kver}`);
  const root = path.join(work, `${name}.root`);
  fs.rmSync(root, { recursive: true, force: true });
  if (sysroot) execFileSync('cp', ['-a', `${sysroot}/.`, root]);
  for (const d of [
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'proc',
    'sys',
    'dev',
    'run',
    'tmp',
    'etc',
    'opt/kata/node_modules',
  ]) {
    fs.mkdirSync(path.join(root, d), { recursive: true });
  }
  fs.rmSync(path.join(root, 'bin/busybox'), { force: true });
  fs.copyFileSync(sysroot ? path.join(kroot, 'bin/busybox') : '/bin/busybox', path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  if (!sysroot) {
    copyWithLibs(root, '/usr/bin/node');
    copyWithLibs(root, '/sbin/mke2fs');
    fs.symlinkSync('mke2fs', path.join(root, 'sbin/mkfs.ext4'));
    if (fs.existsSync('/etc/mke2fs.conf')) fs.copyFileSync('/etc/mke2fs.conf', path.join(root, 'etc/mke2fs.conf'));
  }

  // The package as npm installs it: package.json, dist/, the addon, and its runtime dependency.
  const pkg = path.join(root, 'opt/kata/node_modules/kata-storage');
  const addonDir = sysroot ? `prebuilds/linux-${arch}` : 'build/Release';
  fs.mkdirSync(path.join(pkg, addonDir), { recursive: true });
  fs.copyFileSync(path.join(repo, 'package.json'), path.join(pkg, 'package.json'));
  fs.cpSync(path.join(repo, 'dist'), path.join(pkg, 'dist'), { recursive: true });
  const addons = fs.existsSync(path.join(repo, addonDir))
    ? fs.readdirSync(path.join(repo, addonDir)).filter((f) => f.endsWith('.node'))
    : [];
  if (addons.length === 0)
    throw new Error(`no addon in ${path.join(repo, addonDir)}${sysroot ? ` (npm run prebuild -- ${arch})` : ''}`);
  for (const f of addons) fs.copyFileSync(path.join(repo, addonDir, f), path.join(pkg, addonDir, f));
  fs.cpSync(path.join(repo, 'node_modules/node-gyp-build'), path.join(root, 'opt/kata/node_modules/node-gyp-build'), {
    recursive: true,
  });
  for (const f of ['agent.js', 'child-agent.js'])
    fs.copyFileSync(path.join(__dirname, f), path.join(root, 'opt/kata', f));

  // Modules with their dependencies, in load order; the kernel's modules.dep made by depmod.
  if (!fs.existsSync(path.join(kroot, 'lib/modules', kver, 'modules.dep'))) sh('depmod', ['-b', kroot, kver]);
  const order = [];
  for (const m of MODULES) {
    let out;
    try {
      out = sh('modprobe', ['-d', kroot, '-S', kver, '--show-depends', m], { stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      continue; // not in this kernel (dm_verity is, 9p is; a missing one fails its scenario)
    }
    for (const line of out.split('\n')) {
      const ko = /^insmod (\S+)/.exec(line);
      if (!ko) continue;
      const rel = path.relative(kroot, ko[1]);
      if (!order.includes(rel)) order.push(rel);
    }
  }
  for (const rel of order) {
    const dst = path.join(root, rel);
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    fs.copyFileSync(path.join(kroot, rel), dst);
  }
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) {
    const src = path.join(kroot, 'lib/modules', kver, f);
    if (fs.existsSync(src)) fs.copyFileSync(src, path.join(root, 'lib/modules', kver, f));
  }
  sh('depmod', ['-b', root, kver]);
  fs.writeFileSync(path.join(root, 'etc/kata-modules'), `${order.map((r) => `/${r}`).join('\n')}\n`);
  fs.writeFileSync(
    path.join(root, 'init'),
    `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
# crc32c_generic comes first in the list: ext4 cannot load its checksum driver otherwise.
for m in $(cat /etc/kata-modules); do insmod "$m" 2>/dev/null; done
echo "@@KATA init {\\"uptime\\": $(cut -d' ' -f1 /proc/uptime)}"
node /opt/kata/agent.js
echo "@@KATA exit {\\"code\\": $?}"
sync
poweroff -f
`,
    { mode: 0o755 },
  );
  // Uncompressed: under TCG the guest's gunzip of ~45 MB took longer than the rest of its boot.
  const initrd = path.join(work, `${name}.initrd`);
  execFileSync('sh', ['-c', `cd '${root}' && find . | cpio -o -H newc --quiet > '${initrd}'`], { stdio: 'inherit' });
  fs.rmSync(root, { recursive: true, force: true });
  return { initrd, vmlinuz, kver };
}

module.exports = { buildInitramfs };
