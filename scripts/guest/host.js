#!/usr/bin/env node
// npm run test:guest [-- [--work DIR] [--cache DIR] plan...]: real guests under QEMU (TCG), driven
// the way a Kata runtime drives one. For each plan (plans.js; default q35, microvm, old, verity)
// it builds an initramfs (initramfs.js: busybox-static, this machine's node and mkfs.ext4 with
// their libraries, the package as installed, the guest kernel's modules with their dependencies),
// boots Debian's own kernel package (fetch.js), and answers the guest agent
// (scripts/guest/agent.js) on the serial console: "plug X" becomes QMP blockdev-add + device_add
// (qmp.js) of disks made by images.js, "unplug X" becomes device_del, "host X" changes the 9p share
// (watchable-bind's source). The guest's Sandbox waits, mounts and checks; this side counts.
// Every run keeps its serial console and QMP traffic in <work>/<plan>.log.
// Kernels and virtiofsd come from Debian (scripts/guest/fetch.sh) into .cache/guest (git-ignored).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { ensureApt, fetchDeb } = require('./fetch');
const { buildInitramfs } = require('./initramfs');
const { DEFAULT_PLANS, planSpec } = require('./plans');
const { Qmp } = require('./qmp');
const { repo } = require('./shell');

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    work: { type: 'string', default: '/tmp/kata-guest' },
    cache: { type: 'string', default: path.join(repo, '.cache/guest') },
  },
});
const plans = positionals.length ? positionals : DEFAULT_PLANS;
const work = path.resolve(opts.work);
const cache = path.resolve(opts.cache);

const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

/**
 * trixie's virtiofsd (run through trixie's own loader and libraries: it needs a newer glibc than
 * this machine's) serving `<work>/<plan>.vfs` on `<work>/<plan>.vfs.sock`; returns { sock, child },
 * or null when it cannot be fetched (the virtio-fs scenario then fails, the rest runs).
 */
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

/**
 * Boots `plan`'s guest and plays the runtime for its agent until it powers off (10 min at most),
 * adding each result to `counts` ({ passed, failed }); returns the plan's log file.
 */
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
  const spec = planSpec(plan, { work, cache, virtiofs });
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
