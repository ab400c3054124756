#!/usr/bin/env node
// npm run test:guest [-- plan...]: real guests under QEMU (TCG), driven the way a Kata runtime
// drives one. For each plan it builds an initramfs (busybox-static, this machine's node and
// mkfs.ext4 with their libraries, the package as installed, the guest kernel's modules with their
// dependencies), boots Debian's own kernel package, and answers the guest agent
// (scripts/guest/agent.js) on the serial console: "plug X" becomes QMP blockdev-add + device_add,
// "unplug X" becomes device_del, "host X" changes the 9p share (watchable-bind's source). The
// guest's Sandbox waits, mounts and checks; this side counts.
// Every run keeps its serial console and QMP traffic in <work>/<plan>.log.
//   plans: q35 (6.1, every PCI/SCSI/NVDIMM/9p/virtio-fs/watchable-bind/multi-layer EROFS
//   scenario), microvm (virtio-mmio), old (bullseye 5.10: auto falls back to mount(2)), verity.
//   Default: these four. arm64 (virt with a device tree, the arm64 prebuild on Debian's arm64
//   Node) and s390x (blk-ccw, the s390x prebuild) run when named: they are slower. verity: dm-verity images from veritysetup (verity_info).
// Kernels and virtiofsd come from Debian (scripts/guest/fetch.sh) into .cache/guest (git-ignored).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { ensureApt, fetchDeb, foreignNode } = require('./fetch');
const { image, erofsImage, verityImage } = require('./images');
const { buildInitramfs } = require('./initramfs');
const { Qmp } = require('./qmp');
const { repo } = require('./shell');

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    work: { type: 'string', default: '/tmp/kata-guest' },
    cache: { type: 'string', default: path.join(repo, '.cache/guest') },
  },
});
const plans = positionals.length ? positionals : ['q35', 'microvm', 'old', 'verity'];
const work = path.resolve(opts.work);
const cache = path.resolve(opts.cache);

const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** The machine and devices of each plan. */
function planSpec(plan, virtiofs) {
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

function startVirtiofsd(plan, log) {
  let dir;
  try {
    dir = fetchDeb('virtiofsd-trixie', cache);
  } catch (e) {
    log(`virtiofsd: cannot fetch: ${e.message}`);
    return null;
  }
  const shared = path.join(work, `${plan}.vfs`);
  fs.rmSync(shared, { recursive: true, force: true });
  fs.mkdirSync(shared);
  fs.writeFileSync(path.join(shared, 'kata-marker'), 'virtiofs\n');
  const sock = path.join(work, `${plan}.vfs.sock`);
  fs.rmSync(sock, { force: true });
  const lib = path.join(dir, 'usr/lib/x86_64-linux-gnu');
  const child = spawn(
    path.join(lib, 'ld-linux-x86-64.so.2'),
    [
      '--library-path',
      lib,
      path.join(dir, 'usr/libexec/virtiofsd'),
      '--socket-path',
      sock,
      '--shared-dir',
      shared,
      '--sandbox',
      'none',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.on('data', (d) => log(`virtiofsd: ${String(d).trimEnd()}`));
  child.stderr.on('data', (d) => log(`virtiofsd: ${String(d).trimEnd()}`));
  return { sock, child };
}

async function runPlan(plan, counts) {
  const logFile = path.join(work, `${plan}.log`);
  const logFd = fs.openSync(logFile, 'w');
  const t0 = Date.now();
  const log = (s) => fs.writeSync(logFd, `[${secs(Date.now() - t0).padStart(7)}] ${s}\n`);
  const fail = (name, detail) => {
    counts.failed++;
    console.log(`not ok - ${plan}: ${name}${detail ? ` (${detail})` : ''}`);
  };
  let virtiofs = null;
  if (plan === 'q35') {
    virtiofs = startVirtiofsd(plan, log);
    for (let i = 0; virtiofs && i < 100 && !fs.existsSync(virtiofs.sock); i++)
      await new Promise((r) => setTimeout(r, 50));
    if (virtiofs && !fs.existsSync(virtiofs.sock)) virtiofs = null;
    if (!virtiofs) fail('virtio-fs', 'no virtiofsd from trixie; see the log');
  }
  const spec = planSpec(plan, virtiofs);
  const { initrd, vmlinuz } = buildInitramfs(work, plan, fetchDeb(spec.kernel, cache), spec.sysroot, spec.arch);
  const qmpSock = path.join(work, `${plan}.qmp`);
  fs.rmSync(qmpSock, { force: true });
  const args = [
    ...spec.args,
    '-display',
    'none',
    '-serial',
    'stdio',
    '-qmp',
    `unix:${qmpSock},server=on,wait=off`,
    '-kernel',
    vmlinuz,
    '-initrd',
    initrd,
    '-append',
    `${spec.cmdline} panic=-1 loglevel=4`,
  ];
  const binary = spec.qemu || 'qemu-system-x86_64';
  log(`${binary} ${args.join(' ')}`);
  const started = Date.now();
  const qemu = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  qemu.stderr.on('data', (d) => log(`qemu stderr: ${String(d).trimEnd()}`));
  const qmp = new Qmp(qmpSock, log);
  await qmp.connect();
  const plugged = new Map(); // id -> device_add time
  const timings = { boot: 0, plugs: [] };
  let done = null;
  let queue = Promise.resolve();
  const act = (fn) => {
    queue = queue.then(fn).catch((e) => fail('QMP', e.message));
  };

  const onLine = (line) => {
    log(`console: ${line}`);
    const m = /@@KATA (\w+) ?(.*)$/.exec(line);
    if (!m) return;
    const body = m[2] ? JSON.parse(m[2]) : {};
    switch (m[1]) {
      case 'node':
        timings.boot = Date.now() - started;
        timings.guestUptime = body.uptime;
        break;
      case 'plug':
        act(async () => {
          for (const d of spec.devices[body.id] || []) {
            await qmp.cmd('blockdev-add', {
              driver: 'raw',
              'node-name': `n-${d.id}`,
              file: { driver: 'file', filename: d.img },
            });
            await qmp.cmd('device_add', { ...d.device, id: d.id, drive: `n-${d.id}` });
          }
          plugged.set(body.id, Date.now());
        });
        break;
      case 'host':
        act(() => {
          const fn = spec.host && spec.host[body.id];
          if (!fn) throw new Error(`no host action '${body.id}'`);
          fn();
        });
        break;
      case 'mounted':
        act(() => {
          const at = plugged.get(body.id);
          if (at) timings.plugs.push([body.id, Date.now() - at]);
        });
        break;
      case 'unplug':
        act(async () => {
          for (const d of [...(spec.devices[body.id] || [])].reverse()) {
            await qmp.cmd('device_del', { id: d.id });
            const ev = await qmp.event((e) => e.event === 'DEVICE_DELETED' && e.data && e.data.device === d.id, 60000);
            if (!ev) fail(`device_del ${d.id}`, 'no DEVICE_DELETED within 60 s');
            else await qmp.cmd('blockdev-del', { 'node-name': `n-${d.id}` });
          }
        });
        break;
      case 'result':
        if (body.ok) {
          counts.passed++;
          console.log(`ok - ${plan}: ${body.name}`);
        } else fail(body.name, body.detail);
        break;
      case 'done':
        done = body;
        break;
      default:
    }
  };
  let buf = '';
  qemu.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl).replace(/\r$/, ''));
      buf = buf.slice(nl + 1);
    }
  });
  const limit = 600000;
  const exited = await new Promise((res) => {
    const timer = setTimeout(() => res(false), limit);
    qemu.on('exit', () => {
      clearTimeout(timer);
      res(true);
    });
  });
  if (!exited) {
    qemu.kill('SIGKILL');
    fail('guest', `no poweroff within ${limit / 1000} s`);
  }
  await queue;
  qmp.conn?.destroy();
  if (virtiofs) virtiofs.child.kill();
  if (!done) fail('guest', 'the agent never reported done');
  const whole = Date.now() - t0;
  const plugs = timings.plugs.map(([id, ms]) => `${id} ${secs(ms)}`).join(', ');
  console.log(
    `# ${plan}: boot to node ${secs(timings.boot)} (guest uptime ${timings.guestUptime} s), device_add -> mounted: ${plugs || 'none'}, whole run ${secs(whole)}`,
  );
  log(`timings ${JSON.stringify({ ...timings, whole })}`);
  fs.closeSync(logFd);
  return logFile;
}

(async () => {
  if (process.getuid() !== 0) {
    console.log('guest: needs root (apt, QEMU images)');
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  fs.mkdirSync(work, { recursive: true });
  ensureApt(plans);
  const counts = { passed: 0, failed: 0 };
  const t0 = Date.now();
  for (const plan of plans) {
    const before = counts.failed;
    let logFile = path.join(work, `${plan}.log`);
    try {
      logFile = await runPlan(plan, counts);
    } catch (e) {
      counts.failed++;
      console.log(`not ok - ${plan}: ${e.stack}`);
    }
    if (counts.failed > before) console.log(`# ${plan}: serial console and QMP traffic in ${logFile}`);
  }
  console.log(`# guests: ${secs(Date.now() - t0)} in all`);
  console.log(`guest: ${counts.passed} passed, ${counts.failed} failed`);
  process.exit(counts.failed ? 1 : 0);
})();
