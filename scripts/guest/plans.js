'use strict';
// The plans: for each, the QEMU machine, the Debian kernel and the devices the guest agent asks
// for by name, with the images and shared directories they need made in the work directory.
//   q35 (6.1, every PCI/SCSI/NVDIMM/9p/virtio-fs/watchable-bind/multi-layer EROFS scenario, the
//   agent restart),
//   microvm (virtio-mmio), old (bullseye 5.10: auto falls back to mount(2)), verity (dm-verity
//   images from veritysetup, verity_info): the default run. arm64 (virt with a device tree, the
//   arm64 prebuild on Debian's arm64 Node) and s390x (blk-ccw, the s390x prebuild) run when
//   named: they are slower.
const fs = require('node:fs');
const path = require('node:path');
const { foreignNode } = require('./fetch');
const { image, erofsImage, verityImage } = require('./images');

const DEFAULT_PLANS = ['q35', 'microvm', 'old', 'verity'];

/**
 * The machine and devices of `plan`: { kernel (a fetch.sh name), qemu (the binary; x86-64's when
 * absent), sysroot and arch (a foreign arch's Node), args (QEMU's, before the kernel and console),
 * cmdline, devices ({ name the agent plugs: [{ id, img, device (device_add's arguments) }] }), host
 * ({ name the agent asks for: a change to the shared directory }) }. `virtiofs` ({ sock } of a
 * running virtiofsd, or null) adds the virtio-fs device to q35; images and shares go in `work`,
 * a foreign arch's Node in `cache`.
 */
function planSpec(plan, { work, cache, virtiofs }) {
  const shared = path.join(work, `${plan}.shared`);
  fs.rmSync(shared, { recursive: true, force: true });
  fs.mkdirSync(shared);
  fs.writeFileSync(path.join(shared, 'kata-marker'), '9p\n');
  // What the PCIe plans share: root ports (hot-plug slots) on pcie.0, the 9p share of `shared`, and
  // virtio-blk-pci disks hot-plugged behind a port or bridge.
  const rootPort = (n, addr) => ['-device', `pcie-root-port,id=rp${n},bus=pcie.0,chassis=${n},addr=${addr}`];
  const share9p = [
    '-fsdev',
    `local,id=fs9p,path=${shared},security_model=none`,
    '-device',
    'virtio-9p-pci,fsdev=fs9p,mount_tag=kataShared,bus=pcie.0,addr=0b.0',
  ];
  const blk = (id, bus, addr, img, extra = {}) => ({
    id,
    img,
    device: { driver: 'virtio-blk-pci', bus, addr, ...extra },
  });
  if (plan === 'verity') {
    const good = verityImage(work, 'verity-good', 'verity');
    const corrupt = verityImage(work, 'verity-corrupt', 'verity');
    const bytes = fs.readFileSync(corrupt.img);
    const at = bytes.indexOf('KATA-VERITY-PAYLOAD-');
    if (at < 0 || at >= corrupt.info.offset) throw new Error('verity: payload block not found in the data area');
    const fd = fs.openSync(corrupt.img, 'r+');
    fs.writeSync(fd, Buffer.from('X'), 0, 1, at + 100);
    fs.closeSync(fd);
    const wrongImg = path.join(work, 'verity-wrong.img');
    fs.copyFileSync(good.img, wrongImg);
    const wrong = { ...good.info, hash: good.info.hash.replace(/^./, (c) => (c === '0' ? '1' : '0')) };
    fs.writeFileSync(
      path.join(shared, 'verity.json'),
      JSON.stringify({ good: good.info, corrupt: corrupt.info, wrong }),
    );
    return {
      kernel: 'kernel-bookworm-amd64',
      args: [
        '-machine',
        'q35,accel=tcg',
        '-m',
        '1G',
        '-nodefaults',
        '-no-reboot',
        '-smp',
        '1',
        ...rootPort(1, '05.0'),
        ...rootPort(2, '07.0'),
        ...rootPort(3, '08.0'),
        ...share9p,
      ],
      cmdline: 'console=ttyS0 kata.plan=verity',
      devices: {
        'verity-good': [blk('vgood', 'rp1', '00.0', good.img)],
        'verity-corrupt': [blk('vcorrupt', 'rp2', '00.0', corrupt.img)],
        'verity-wrong': [blk('vwrong', 'rp3', '00.0', wrongImg)],
      },
    };
  }
  // Another architecture: its QEMU, Debian's kernel for it, and Debian's Node with our prebuild.
  const foreign = (arch, qemu) => ({
    qemu,
    kernel: `kernel-bookworm-${arch}`,
    sysroot: foreignNode(arch, cache),
    arch,
  });
  if (plan === 's390x') {
    return {
      ...foreign('s390x', 'qemu-system-s390x'),
      args: ['-machine', 's390-ccw-virtio,accel=tcg', '-m', '1G', '-smp', '1', '-nodefaults', '-no-reboot'],
      cmdline: 'console=ttysclp0 kata.plan=s390x',
      devices: {
        ccw: [{ id: 'ccw', img: image(work, 'ccw', 'ccw'), device: { driver: 'virtio-blk-ccw', devno: 'fe.0.0005' } }],
      },
    };
  }
  if (plan === 'arm64') {
    // No firmware, so no ACPI: the kernel gets QEMU's device tree, as the failing guest did.
    return {
      ...foreign('arm64', 'qemu-system-aarch64'),
      args: [
        '-machine',
        'virt,accel=tcg',
        '-cpu',
        'cortex-a57',
        '-m',
        '1G',
        '-smp',
        '1',
        '-nodefaults',
        '-no-reboot',
        '-drive',
        `id=cold,if=none,format=raw,file=${image(work, 'arm-cold', 'cold')}`,
        '-device',
        'virtio-blk-pci,drive=cold,bus=pcie.0,addr=01.0',
        ...rootPort(1, '02.0'),
      ],
      cmdline: 'console=ttyAMA0 kata.plan=arm64',
      devices: {
        rootport: [
          {
            id: 'rootport',
            img: image(work, 'arm-hot', 'hotplugged'),
            device: { driver: 'virtio-blk-pci', bus: 'rp1', addr: '00.0' },
          },
        ],
      },
    };
  }
  if (plan === 'microvm') {
    return {
      kernel: 'kernel-bookworm-amd64',
      args: [
        '-machine',
        'microvm,accel=tcg,acpi=on,rtc=on,pit=on,pic=on',
        '-m',
        '1G',
        '-no-reboot',
        '-drive',
        `id=d0,if=none,format=raw,file=${image(work, 'mmio0', 'mmio0')}`,
        '-device',
        'virtio-blk-device,drive=d0',
        '-drive',
        `id=d1,if=none,format=raw,file=${image(work, 'mmio1', 'mmio')}`,
        '-device',
        'virtio-blk-device,drive=d1',
      ],
      // Under TCG a microvm has no timer the kernel can calibrate the TSC against: name its rate.
      cmdline: 'console=ttyS0 kata.plan=microvm tsc_early_khz=2000000',
      devices: {},
    };
  }
  const common = [
    '-nodefaults',
    '-no-reboot',
    '-smp',
    '1',
    ...rootPort(1, '05.0'),
    '-device',
    'pcie-pci-bridge,id=br1,bus=pcie.0,addr=06.0',
    ...rootPort(2, '07.0'),
    ...rootPort(3, '08.0'),
    '-device',
    'virtio-scsi-pci,id=scsi0,bus=pcie.0,addr=0a.0',
    ...share9p,
  ];
  if (plan === 'old') {
    return {
      kernel: 'kernel-bullseye-amd64',
      args: ['-machine', 'q35,accel=tcg', '-m', '1G', ...common],
      cmdline: 'console=ttyS0 kata.plan=old',
      devices: { rootport: [blk('rootport', 'rp1', '00.0', image(work, 'old-blank', undefined))] },
    };
  }
  const pmem = image(work, 'pmem', 'nvdimm', 64);
  // watchable-bind's source: a directory on the 9p share that the host changes while it is watched.
  const watched = path.join(shared, 'watched');
  fs.mkdirSync(watched);
  fs.writeFileSync(path.join(watched, 'changed'), 'before\n');
  fs.writeFileSync(path.join(watched, 'deleted'), 'deleted\n');
  fs.mkdirSync(path.join(watched, 'sub'));
  fs.writeFileSync(path.join(watched, 'sub', 'kept'), 'kept\n');
  const mem = virtiofs
    ? ['-object', 'memory-backend-memfd,id=mem,size=1G,share=on', '-machine', 'memory-backend=mem']
    : [];
  const fsArgs = virtiofs
    ? [
        '-chardev',
        `socket,id=vfs,path=${virtiofs.sock}`,
        '-device',
        'vhost-user-fs-pci,chardev=vfs,tag=kataFs,bus=pcie.0,addr=0c.0',
      ]
    : [];
  return {
    kernel: 'kernel-bookworm-amd64',
    args: [
      '-machine',
      'q35,accel=tcg,nvdimm=on',
      '-m',
      '1G,slots=2,maxmem=2G',
      ...mem,
      ...common,
      ...fsArgs,
      '-object',
      `memory-backend-file,id=pm0,share=on,mem-path=${pmem},size=64M`,
      '-device',
      'nvdimm,id=nv0,memdev=pm0',
      ...rootPort(4, '0d.0'),
      ...rootPort(5, '0e.0'),
      ...rootPort(6, '0f.0'),
      ...rootPort(7, '10.0'),
      ...rootPort(8, '11.0'),
      ...rootPort(9, '12.0'),
    ],
    cmdline: `console=ttyS0 kata.plan=q35${virtiofs ? ' kata.virtiofs=1' : ''}`,
    devices: {
      rootport: [blk('rootport', 'rp1', '00.0', image(work, 'blank', undefined))],
      bridge: [blk('bridge', 'br1', '03.0', image(work, 'bridge', 'bridge'))],
      // Function 1 first: the slot appears to the guest when function 0 arrives.
      multifunction: [
        blk('mf1', 'rp3', '00.1', image(work, 'fn1', 'function1')),
        blk('mf0', 'rp3', '00.0', image(work, 'fn0', 'function0'), { multifunction: 'on' }),
      ],
      scsi: [
        {
          id: 'scsi12',
          img: image(work, 'scsi', 'scsi'),
          device: { driver: 'scsi-hd', bus: 'scsi0.0', 'scsi-id': 1, lun: 2 },
        },
      ],
      surprise: [blk('surprise', 'rp2', '00.0', image(work, 'surprise', 'surprise'))],
      // Kata's multi-layer EROFS rootfs: an ext4 upper and two EROFS lowers, each on its own port.
      multilayer: [
        blk('mlupper', 'rp4', '00.0', image(work, 'ml-upper', 'upper')),
        blk(
          'mllower0',
          'rp5',
          '00.0',
          erofsImage(work, 'ml-lower0', { 'a.txt': 'from lower 0\n', 'shared.txt': 'lower 0 wins\n' }),
        ),
        blk(
          'mllower1',
          'rp6',
          '00.0',
          erofsImage(work, 'ml-lower1', { 'b.txt': 'from lower 1\n', 'shared.txt': 'lower 1 loses\n' }),
        ),
      ],
      // One request's two disks, each plugged once the guest waits for it, the second a second later.
      'concurrent-a': [blk('concurrent-a', 'rp8', '00.0', image(work, 'concurrent-a', 'concurrent-a'))],
      'concurrent-b': [blk('concurrent-b', 'rp9', '00.0', image(work, 'concurrent-b', 'concurrent-b'))],
      // Plugged only for the retry, after the agent that waited for it was killed.
      restart: [blk('restart', 'rp7', '00.0', image(work, 'restart', 'restart'))],
    },
    // What the guest asks the host to do to the shared directory ("@@KATA host {id}").
    host: {
      'watch-change': () => {
        fs.writeFileSync(path.join(watched, 'changed'), 'after, changed by the host\n');
        fs.writeFileSync(path.join(watched, 'added'), 'added by the host\n');
        fs.rmSync(path.join(watched, 'deleted'));
      },
    },
  };
}

module.exports = { DEFAULT_PLANS, planSpec };
