// Runs inside the guest (PID 1's child), playing the Kata agent's part: it asks the host (the
// runtime) for a device on the serial console, lets Sandbox.addStorages wait for it and mount
// it, and proves the result from /proc/self/mountinfo and from data the host wrote into the
// image. Lines starting "@@KATA " are the protocol; host.js reads them:
//   @@KATA plug {"id": ...}     hot-plug device `id` now      @@KATA unplug {"id": ...}
//   @@KATA mounted {"id": ...}  the device's storage is mounted (host times device_add -> here)
//   @@KATA host {"id": ...}     change the shared directory as action `id` says
//   @@KATA result {"name", "ok", "detail"}                      @@KATA done
// The restart scenario runs child-agent.js (beside this file) as the agent process it kills.
// Which scenarios run is the plan named on the kernel command line (kata.plan=...).
'use strict';
const { spawn } = require('node:child_process');
const diagnostics = require('node:diagnostics_channel');
const fs = require('node:fs');
const path = require('node:path');
const ks = require('/opt/kata/node_modules/kata-storage');
const {
  DRIVER_9P_TYPE,
  DRIVER_BLK_CCW_TYPE,
  DRIVER_BLK_MMIO_TYPE,
  DRIVER_BLK_PCI_TYPE,
  DRIVER_EPHEMERAL_TYPE,
  DRIVER_LOCAL_TYPE,
  DRIVER_NVDIMM_TYPE,
  DRIVER_OVERLAYFS_TYPE,
  DRIVER_SCSI_TYPE,
  DRIVER_VIRTIOFS_TYPE,
  DRIVER_WATCHABLE_BIND_TYPE,
} = ks.StorageDrivers;

const ROOT = '/run/kata-containers';
const SB = `${ROOT}/sandbox`;
const plan = (/(?:^| )kata\.plan=(\S+)/.exec(fs.readFileSync('/proc/cmdline', 'utf8')) || [])[1] || 'q35';
// Host-written images carry this file; its content names the image.
const MARKER = 'kata-marker';

function say(kind, obj) {
  process.stdout.write(`@@KATA ${kind} ${obj === undefined ? '' : JSON.stringify(obj)}\n`);
}

/** Mount entries under `prefix` from /proc/self/mountinfo: { point, fstype, source, options }. */
function mounts(prefix = ROOT) {
  const out = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const [pre, post] = line.split(' - ');
    const f = pre.split(' ');
    const g = post.split(' ');
    const point = f[4].replace(/\\040/g, ' ');
    if (point === prefix || point.startsWith(`${prefix}/`))
      out.push({ point, fstype: g[0], source: g[1], options: `${f[5]},${g[2]}` });
  }
  return out;
}
function mountAt(point) {
  return mounts(point).find((m) => m.point === point);
}
function snapshot() {
  const tree = [];
  const walk = (d) => {
    let names;
    try {
      names = fs.readdirSync(d);
    } catch {
      return;
    }
    for (const n of names.sort()) {
      const p = path.join(d, n);
      tree.push(p);
      if (fs.lstatSync(p).isDirectory() && !mountAt(p)) walk(p);
    }
  };
  walk(ROOT);
  return JSON.stringify({ mounts: mounts(), tree });
}

const results = [];
function check(name, ok, detail) {
  results.push({ name, ok: !!ok });
  say('result', { name, ok: !!ok, detail: String(detail ?? '') });
}

async function scenario(name, fn) {
  try {
    await fn();
  } catch (e) {
    check(name, false, `threw ${e && e.code} ${e && e.message}`);
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitGone(blockName, ms) {
  for (let t = 0; t < ms; t += 100) {
    if (!fs.existsSync(`/sys/block/${blockName}`)) return true;
    await sleep(100);
  }
  return false;
}

// watchable-bind polls every 200 ms here (Kata: 2 s), so the host's changes show up quickly.
const sandbox = new ks.Sandbox({ hotplugTimeoutMs: 60000, watchIntervalMs: 200 });

/** Asks for `id` (the host hot-plugs it) while addStorages already waits for it. */
async function plugAndAdd(id, storages, containerId) {
  say('plug', { id });
  const r = await sandbox.addStorages(storages, { containerId });
  say('mounted', { id });
  return r;
}

/**
 * An agent process (child-agent.js) with a Sandbox on the journal `statePath`: { child, exited,
 * send(req), next(ev, ms) }. next() resolves to its next message of kind `ev`, passing over the
 * others; it throws on a "failed" message (with the child's code), when the process ends first,
 * or when nothing comes within `ms`.
 */
function startChildAgent(statePath) {
  const child = spawn(process.execPath, [path.join(__dirname, 'child-agent.js'), statePath], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const got = [];
  let wake = () => {};
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      got.push(JSON.parse(buf.slice(0, nl)));
      buf = buf.slice(nl + 1);
    }
    wake();
  });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r(signal || code)));
  child.on('exit', () => wake());
  async function next(ev, ms) {
    const deadline = Date.now() + ms;
    for (;;) {
      while (got.length > 0) {
        const m = got.shift();
        if (m.ev === ev) return m;
        if (m.ev === 'failed') {
          throw Object.assign(new Error(`the child agent's ${m.op} failed: ${m.message}`), { code: m.code });
        }
      }
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`the child agent ended (${await exited}) before '${ev}'`);
      if (Date.now() >= deadline) throw new Error(`no '${ev}' from the child agent within ${ms} ms`);
      await new Promise((r) => {
        wake = r;
        setTimeout(r, Math.min(1000, deadline - Date.now()));
      });
    }
  }
  return { child, exited, next, send: (req) => child.stdin.write(`${JSON.stringify(req)}\n`) };
}

/** The storage at `point` is a real mount of `fstype` whose host-written marker reads `want`. */
function proveMount(name, point, fstype, want, sourceRe) {
  const m = mountAt(point);
  check(
    `${name}: in mountinfo as ${fstype}`,
    m && m.fstype === fstype && (!sourceRe || sourceRe.test(m.source)),
    JSON.stringify(m),
  );
  if (want !== undefined) {
    let got;
    try {
      got = fs.readFileSync(path.join(point, MARKER), 'utf8').trim();
    } catch (e) {
      got = `${e.code}`;
    }
    check(`${name}: reads the data the host wrote`, got === want, `read '${got}', want '${want}'`);
  }
  return m;
}

function blockOf(m) {
  return m ? path.basename(m.source) : '';
}

/**
 * The agent process dies (SIGKILL) while a request waits for `disk` (driver and source), which the
 * runtime has not plugged yet; a new agent process on the same journal recovers, and the runtime's
 * retry of the same request succeeds once the host plugs device "restart". The request's ephemeral
 * storage comes first, yet when the kill lands nothing of the request is made (it is one job once
 * its devices are found): the recovery rolls the cut-off call back by its begin record, both
 * mount points, and must leave nothing. Each agent is a node process of its own (child-agent.js),
 * its journal on the guest's /run tmpfs, which outlives the agent but not the guest.
 */
async function restartScenario(disk) {
  const where = `${disk.driver} ${disk.source}`;
  await scenario(`agent killed while it waits for a hot-plugged disk (${where}), restarted`, async () => {
    const statePath = `${ROOT}/agent.journal`;
    const c = `${ROOT}/c5`;
    const request = {
      op: 'add',
      containerId: 'c5',
      storages: [
        {
          driver: DRIVER_EPHEMERAL_TYPE,
          source: 'tmpfs',
          fstype: 'tmpfs',
          options: ['size=8m'],
          mountPoint: `${c}/ephemeral`,
        },
        { ...disk, fstype: 'ext4', mountPoint: `${c}/disk` },
      ],
    };
    fs.rmSync(statePath, { force: true });
    const children = [];
    try {
      const first = startChildAgent(statePath);
      children.push(first);
      await first.next('recovery', 60000);
      // Taken once the journal exists: it is the one file the agents leave.
      const before = snapshot();
      first.send(request);
      const waiting = await first.next('waiting', 30000);
      const begun = fs
        .readFileSync(statePath, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"t":"begin"'));
      const held = mountAt(`${c}/ephemeral`);
      first.child.kill('SIGKILL');
      const how = await first.exited;
      check(
        `restart: the first agent is SIGKILLed while it waits for ${where}, its begin record written, nothing mounted yet`,
        how === 'SIGKILL' && waiting.source === disk.source && begun.length === 1 && held === undefined,
        `${how} waiting ${JSON.stringify(waiting)} begin ${JSON.stringify(begun)} ${JSON.stringify(held)}`,
      );

      const second = startChildAgent(statePath);
      children.push(second);
      const { report } = await second.next('recovery', 60000);
      check(
        'restart: the new agent rolls the cut-off request back (both mount points), adopts and drops nothing, no errors',
        JSON.stringify(report.rolledBack.slice().sort()) === JSON.stringify([`${c}/disk`, `${c}/ephemeral`]) &&
          report.adopted.length === 0 &&
          report.dropped.length === 0 &&
          report.errors.length === 0 &&
          report.tornBytes === 0,
        JSON.stringify(report),
      );
      check(
        'restart: nothing of the cut-off request is left (mountinfo and tree as before it; no c5 directory)',
        snapshot() === before && !fs.existsSync(c),
        snapshot(),
      );

      // The runtime's retry: the same request again, and this time the disk arrives.
      second.send(request);
      say('plug', { id: 'restart' });
      await second.next('done', 60000);
      say('mounted', { id: 'restart' });
      proveMount(`restart: the retried request mounts ${where}`, `${c}/disk`, 'ext4', 'restart', /^\/dev\/vd/);
      const e = mountAt(`${c}/ephemeral`);
      check('restart: the retried request mounts its ephemeral tmpfs', e?.fstype === 'tmpfs', JSON.stringify(e));
      second.send({ op: 'remove', containerId: 'c5' });
      await second.next('done', 30000);
      check(
        'restart: removeContainer in the new agent leaves mountinfo and the tree as before the request',
        snapshot() === before,
        snapshot(),
      );
      second.child.stdin.end();
      const code = await second.exited;

      // The journal now says nothing is held: a third agent on it recovers nothing.
      const third = new ks.Sandbox({ statePath });
      const after = await third.recovery;
      check(
        'restart: the next recovery of the journal is empty',
        code === 0 &&
          after.journal &&
          [after.adopted, after.rolledBack, after.dropped, after.errors].every((l) => l.length === 0) &&
          third.storages().size === 0,
        `exit ${code} ${JSON.stringify({ ...after, errors: after.errors.map((x) => x.message) })}`,
      );
      await third.destroy();
    } finally {
      for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      fs.rmSync(statePath, { force: true });
    }
  });
}

/**
 * One request, two blk disks the runtime has not plugged yet: the host plugs the first once the
 * guest is waiting for it and the second a second later. The request must wait for both at once
 * (every wait traced as started before either ends) and mount both; removeContainer leaves
 * mountinfo and the tree as before.
 */
async function concurrentWaitsScenario() {
  await scenario('two late disks of one request are waited for at once', async () => {
    const c = `${ROOT}/c6`;
    const disks = [
      { id: 'concurrent-a', source: '11/00', point: `${c}/a` },
      { id: 'concurrent-b', source: '12/00', point: `${c}/b` },
    ];
    const before = snapshot();
    const trace = [];
    const started = new Map();
    const onStart = (m) => {
      trace.push(`start ${m.source}`);
      started.get(m.source)?.();
    };
    const onEnd = (m) => trace.push(`end ${m.source}`);
    const whenStarted = (source) =>
      new Promise((resolve) => {
        if (trace.includes(`start ${source}`)) resolve();
        else started.set(source, resolve);
      });
    diagnostics.subscribe('tracing:kata-storage:wait:start', onStart);
    diagnostics.subscribe('tracing:kata-storage:wait:asyncEnd', onEnd);
    try {
      const t0 = Date.now();
      const pending = sandbox.addStorages(
        disks.map((d) => ({ driver: DRIVER_BLK_PCI_TYPE, source: d.source, fstype: 'ext4', mountPoint: d.point })),
        { containerId: 'c6' },
      );
      // The runtime answers the guest: each disk is plugged only once the guest waits for it,
      // the second a second after the first.
      await whenStarted(disks[0].source);
      say('plug', { id: disks[0].id });
      await sleep(1000);
      await whenStarted(disks[1].source);
      say('plug', { id: disks[1].id });
      await pending;
      const ms = Date.now() - t0;
      say('mounted', { id: disks[0].id });
      say('mounted', { id: disks[1].id });
      const firstEnd = trace.findIndex((e) => e.startsWith('end '));
      const starts = trace.filter((e) => e.startsWith('start '));
      check(
        'concurrent waits: both disks were awaited at once (both waits started before either ended)',
        starts.length === 2 && firstEnd >= 2,
        `${JSON.stringify(trace)} in ${ms} ms`,
      );
      for (const d of disks) proveMount(`concurrent waits: blk ${d.source}`, d.point, 'ext4', d.id, /^\/dev\/vd/);
      await sandbox.removeContainer('c6');
      check(
        'concurrent waits: removeContainer leaves mountinfo and the tree as before the request',
        snapshot() === before,
        snapshot(),
      );
    } finally {
      diagnostics.unsubscribe('tracing:kata-storage:wait:start', onStart);
      diagnostics.unsubscribe('tracing:kata-storage:wait:asyncEnd', onEnd);
    }
  });
}

async function q35() {
  const disks = `${SB}/disks`;
  let rootPortDisk = '';
  let bridgeDisk = '';

  await scenario('blk on a PCIe root port', async () => {
    const point = `${disks}/blank`;
    await plugAndAdd(
      'rootport',
      [
        {
          driver: DRIVER_BLK_PCI_TYPE,
          source: '05/00',
          fstype: 'ext4',
          driverOptions: ['create_filesystem'],
          mountPoint: point,
        },
      ],
      'c1',
    );
    const m = proveMount('blk 05/00 create_filesystem', point, 'ext4', undefined, /^\/dev\/vd[a-z]+$/);
    rootPortDisk = blockOf(m);
    fs.writeFileSync(`${point}/written-by-guest`, 'guest wrote this\n');
    check(
      'blk 05/00: device is the one at PCI 0000:00:05.0/0000:01:00.0',
      fs.realpathSync(`/sys/block/${rootPortDisk}`).includes('/0000:00:05.0/0000:01:00.0/'),
      fs.realpathSync(`/sys/block/${rootPortDisk}`),
    );
  });

  await scenario('blk behind a PCI bridge', async () => {
    const point = `${disks}/bridge`;
    await plugAndAdd(
      'bridge',
      [{ driver: DRIVER_BLK_PCI_TYPE, source: '06/03', fstype: 'ext4', options: ['ro'], mountPoint: point }],
      'c1',
    );
    bridgeDisk = blockOf(proveMount('blk 06/03 (two-level path)', point, 'ext4', 'bridge', /^\/dev\/vd/));
  });

  await scenario('blk multifunction', async () => {
    const point = `${disks}/fn1`;
    await plugAndAdd(
      'multifunction',
      [{ driver: DRIVER_BLK_PCI_TYPE, source: '08/00.1', fstype: 'ext4', mountPoint: point }],
      'c1',
    );
    const m = proveMount('blk 08/00.1 (function 1)', point, 'ext4', 'function1', /^\/dev\/vd/);
    check(
      'blk 08/00.1: function 1 behind the port at 08, not function 0',
      /\/0000:00:08\.0\/0000:[0-9a-f]{2}:00\.1\/virtio/.test(fs.realpathSync(`/sys/block/${blockOf(m)}`)),
      fs.realpathSync(`/sys/block/${blockOf(m)}`),
    );
  });

  await scenario('scsi target:lun', async () => {
    const point = `${disks}/scsi`;
    await plugAndAdd('scsi', [{ driver: DRIVER_SCSI_TYPE, source: '1:2', fstype: 'ext4', mountPoint: point }], 'c1');
    const m = proveMount('scsi 1:2', point, 'ext4', 'scsi', /^\/dev\/sd[a-z]+$/);
    check(
      'scsi 1:2: the disk at <host>:0:1:2',
      /:0:1:2\/block\//.test(fs.realpathSync(`/sys/block/${blockOf(m)}`)),
      fs.realpathSync(`/sys/block/${blockOf(m)}`),
    );
  });

  await scenario('nvdimm /dev/pmem0', async () => {
    const point = `${disks}/pmem`;
    await sandbox.addStorages(
      [{ driver: DRIVER_NVDIMM_TYPE, source: '/dev/pmem0', fstype: 'ext4', options: ['ro'], mountPoint: point }],
      { containerId: 'c1' },
    );
    proveMount('nvdimm /dev/pmem0', point, 'ext4', 'nvdimm', /^\/dev\/pmem0$/);
  });

  await scenario('9p trans=virtio', async () => {
    const point = `${SB}/shared`;
    await sandbox.addStorages(
      [
        {
          driver: DRIVER_9P_TYPE,
          source: 'kataShared',
          fstype: '9p',
          options: ['version=9p2000.L'],
          mountPoint: point,
          shared: true,
        },
      ],
      { containerId: 'c1' },
    );
    const m = proveMount('9p kataShared', point, '9p', '9p');
    check('9p: trans=virtio in the mount options', m && /trans=virtio/.test(m.options), m && m.options);
  });

  if (process.env.KATA_VIRTIOFS === '1' || /kata\.virtiofs=1/.test(fs.readFileSync('/proc/cmdline', 'utf8'))) {
    await scenario('virtio-fs', async () => {
      const point = `${SB}/virtiofs`;
      await sandbox.addStorages(
        [{ driver: DRIVER_VIRTIOFS_TYPE, source: 'kataFs', fstype: 'virtiofs', mountPoint: point }],
        {
          containerId: 'c1',
        },
      );
      proveMount('virtio-fs kataFs (real virtiofsd)', point, 'virtiofs', 'virtiofs');
    });
  }

  await scenario('ephemeral, local and overlay alongside', async () => {
    const c = `${ROOT}/c1`;
    await sandbox.addStorages(
      [
        {
          driver: DRIVER_EPHEMERAL_TYPE,
          source: 'tmpfs',
          fstype: 'tmpfs',
          options: ['size=8m', 'mode=1750'],
          mountPoint: `${c}/ephemeral`,
        },
        {
          driver: DRIVER_LOCAL_TYPE,
          source: 'local',
          fstype: 'local',
          options: ['mode=0750'],
          mountPoint: `${c}/local`,
        },
        {
          driver: DRIVER_OVERLAYFS_TYPE,
          source: 'overlay',
          fstype: 'overlay',
          options: [`lowerdir=${disks}/bridge`, `upperdir=${c}/ov/upper`, `workdir=${c}/ov/work`],
          mountPoint: `${c}/rootfs`,
        },
      ],
      { containerId: 'c1' },
    );
    const e = mountAt(`${c}/ephemeral`);
    check(
      'ephemeral: tmpfs with mode=1750',
      e && e.fstype === 'tmpfs' && /mode=1750/.test(e.options),
      JSON.stringify(e),
    );
    const l = fs.statSync(`${c}/local`);
    check(
      'local: a directory, mode 0750, not a mount',
      l.isDirectory() && (l.mode & 0o7777) === 0o750 && !mountAt(`${c}/local`),
      (l.mode & 0o7777).toString(8),
    );
    proveMount('overlay over the bridge disk', `${c}/rootfs`, 'overlay', 'bridge');
  });

  await scenario('removeContainer, device_del, a request that times out', async () => {
    await sandbox.removeContainer('c1');
    const left = mounts().map((m) => m.point);
    check(
      'removeContainer: only the shared 9p storage is left mounted',
      left.length === 1 && left[0] === `${SB}/shared`,
      JSON.stringify(left),
    );
    say('unplug', { id: 'rootport' });
    say('unplug', { id: 'bridge' });
    check('device_del: the root-port disk left the guest', await waitGone(rootPortDisk, 30000), rootPortDisk);
    check('device_del: the bridge disk left the guest', await waitGone(bridgeDisk, 30000), bridgeDisk);
    const before = snapshot();
    const t0 = Date.now();
    let err;
    try {
      await new ks.Sandbox({ hotplugTimeoutMs: 3000 }).addStorages(
        [{ driver: DRIVER_BLK_PCI_TYPE, source: '05/00', fstype: 'ext4', mountPoint: `${disks}/gone` }],
        { containerId: 'c9' },
      );
    } catch (e) {
      err = e;
    }
    check(
      'unplugged disk: the request times out (ETIMEDOUT)',
      err && err.code === 'ETIMEDOUT',
      `${err && err.code} after ${Date.now() - t0} ms: ${err && err.message}`,
    );
    check('unplugged disk: nothing left behind (mountinfo and tree unchanged)', snapshot() === before, snapshot());
  });

  await scenario('surprise removal of a mounted disk', async () => {
    const point = `${disks}/surprise`;
    await plugAndAdd(
      'surprise',
      [{ driver: DRIVER_BLK_PCI_TYPE, source: '07/00', fstype: 'ext4', mountPoint: point }],
      'c2',
    );
    const m = proveMount('blk 07/00', point, 'ext4', 'surprise', /^\/dev\/vd/);
    say('unplug', { id: 'surprise' });
    check('surprise: the mounted disk left the guest', await waitGone(blockOf(m), 30000), blockOf(m));
    check(
      'surprise: the mount is still in mountinfo (the kernel keeps it)',
      !!mountAt(point),
      JSON.stringify(mountAt(point)),
    );
    let io = 'ok';
    try {
      fs.writeFileSync(`${point}/after-removal`, 'x'.repeat(65536));
      const fd = fs.openSync(`${point}/after-removal`, 'r+');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      io = e.code;
    }
    check('surprise: a write that reaches the disk fails with EIO', io === 'EIO', io);
    let rm;
    try {
      await sandbox.removeContainer('c2');
    } catch (e) {
      rm = e;
    }
    check(
      'surprise: removeContainer still unmounts and forgets it',
      !rm && !mountAt(point) && !sandbox.storages().has(point),
      `${rm && rm.code} ${JSON.stringify(mountAt(point))}`,
    );
  });

  await scenario('watchable-bind over the 9p share', async () => {
    const src = `${SB}/shared/watched`;
    const point = `${ROOT}/c3/watched`;
    await sandbox.addStorages(
      [{ driver: DRIVER_WATCHABLE_BIND_TYPE, source: src, fstype: 'bind', mountPoint: point }],
      {
        containerId: 'c3',
      },
    );
    const m = mountAt(point);
    check('watchable-bind: a tmpfs at the mount point', m && m.fstype === 'tmpfs', JSON.stringify(m));
    const read = (rel) => {
      try {
        return fs.readFileSync(path.join(point, rel), 'utf8');
      } catch (e) {
        return e.code;
      }
    };
    const copied = [read('changed'), read('deleted'), read('sub/kept')];
    check(
      'watchable-bind: holds a copy of the source tree',
      JSON.stringify(copied) === JSON.stringify(['before\n', 'deleted\n', 'kept\n']),
      JSON.stringify(copied),
    );
    say('host', { id: 'watch-change' });
    const want = ['after, changed by the host\n', 'added by the host\n', 'ENOENT', 'kept\n'];
    const t0 = Date.now();
    let got;
    while (Date.now() - t0 < 20000) {
      got = [read('changed'), read('added'), read('deleted'), read('sub/kept')];
      if (JSON.stringify(got) === JSON.stringify(want)) break;
      await sleep(100);
    }
    check(
      "watchable-bind: the host's change, addition and deletion show up within 20 s",
      JSON.stringify(got) === JSON.stringify(want),
      `${JSON.stringify(got)} after ${Date.now() - t0} ms`,
    );
    check(
      'watchable-bind: still a tmpfs after the update',
      mountAt(point)?.fstype === 'tmpfs',
      JSON.stringify(mountAt(point)),
    );
    await sandbox.removeContainer('c3');
    check(
      'watchable-bind: removeContainer leaves nothing mounted under c3',
      mounts(`${ROOT}/c3`).length === 0,
      JSON.stringify(mounts(`${ROOT}/c3`)),
    );
  });

  await scenario('erofs.multi-layer', async () => {
    const rootfs = `${ROOT}/c4/rootfs`;
    const layer = (source, fstype, marker) => ({
      driver: DRIVER_BLK_PCI_TYPE,
      source,
      fstype,
      options: [marker, 'X-kata.multi-layer=true'],
      mountPoint: rootfs,
    });
    await plugAndAdd(
      'multilayer',
      [
        layer('0d/00', 'ext4', 'X-kata.overlay-upper'),
        layer('0e/00', 'erofs', 'X-kata.overlay-lower'),
        layer('0f/00', 'erofs', 'X-kata.overlay-lower'),
      ],
      'c4',
    );
    const base = `${ROOT}/c4/multi-layer`;
    const ov = mountAt(rootfs);
    check(
      'erofs.multi-layer: an overlay of lower-0:lower-1 over the ext4 upper',
      ov &&
        ov.fstype === 'overlay' &&
        ov.options.includes(`lowerdir=${base}/lower-0:${base}/lower-1`) &&
        ov.options.includes(`upperdir=${base}/upper/upper`),
      JSON.stringify(ov),
    );
    const up = mountAt(`${base}/upper`);
    const l0 = mountAt(`${base}/lower-0`);
    const l1 = mountAt(`${base}/lower-1`);
    check(
      'erofs.multi-layer: ext4 upper and two read-only erofs lowers on hot-plugged disks',
      up?.fstype === 'ext4' &&
        [l0, l1].every((l) => l && l.fstype === 'erofs' && /^ro,/.test(l.options) && /^\/dev\/vd/.test(l.source)),
      JSON.stringify([up, l0, l1]),
    );
    const read = (rel) => {
      try {
        return fs.readFileSync(path.join(rootfs, rel), 'utf8');
      } catch (e) {
        return e.code;
      }
    };
    // The upper disk's own root holds the host's marker; the overlay's upperdir is upper/upper.
    let marker;
    try {
      marker = fs.readFileSync(`${base}/upper/${MARKER}`, 'utf8');
    } catch (e) {
      marker = e.code;
    }
    const got = [read('a.txt'), read('b.txt'), read('shared.txt'), marker];
    check(
      'erofs.multi-layer: reads both EROFS lowers (the first has priority) and the upper disk the host wrote',
      JSON.stringify(got) === JSON.stringify(['from lower 0\n', 'from lower 1\n', 'lower 0 wins\n', 'upper\n']),
      JSON.stringify(got),
    );
    fs.writeFileSync(`${rootfs}/written-by-guest`, 'rw\n');
    check(
      'erofs.multi-layer: a write lands on the ext4 upper',
      fs.readFileSync(`${base}/upper/upper/written-by-guest`, 'utf8') === 'rw\n',
    );
    check(
      'erofs.multi-layer: no X-kata marker reached the kernel',
      !mounts().some((x) => /X-kata/.test(x.options)),
      JSON.stringify(mounts()),
    );
    await sandbox.removeContainer('c4');
    check(
      'erofs.multi-layer: removeContainer leaves nothing mounted under c4',
      mounts(`${ROOT}/c4`).length === 0,
      JSON.stringify(mounts(`${ROOT}/c4`)),
    );
  });

  await concurrentWaitsScenario();

  await restartScenario({ driver: DRIVER_BLK_PCI_TYPE, source: '10/00' });

  await sandbox.destroy();
  check('destroy: nothing left mounted under /run/kata-containers', mounts().length === 0, JSON.stringify(mounts()));
}

/** Container c1 goes, then the sandbox: nothing of either may stay mounted. */
async function finish(label) {
  await scenario(`${label} removeContainer`, async () => {
    await sandbox.removeContainer('c1');
    await sandbox.destroy();
    check(
      `${label}: removeContainer and destroy leave nothing mounted`,
      mounts().length === 0,
      JSON.stringify(mounts()),
    );
  });
}

/** Older kernel (5.10): `auto` must take mount(2) there, and the blk path must still work. */
async function old() {
  const support = ks.newMountApiSupport();
  check(
    '5.10: the probe finds the new mount API incomplete (no mount_setattr)',
    ks.effectiveMountApi('auto') === 'legacy',
    JSON.stringify(support),
  );
  await scenario('blk on a PCIe root port under 5.10 through mount(2)', async () => {
    const point = `${SB}/disks/blank`;
    await plugAndAdd(
      'rootport',
      [
        {
          driver: DRIVER_BLK_PCI_TYPE,
          source: '05/00',
          fstype: 'ext4',
          driverOptions: ['create_filesystem'],
          mountPoint: point,
        },
      ],
      'c1',
    );
    proveMount('5.10 blk 05/00', point, 'ext4', undefined, /^\/dev\/vd/);
    await sandbox.addStorages(
      [
        {
          driver: DRIVER_9P_TYPE,
          source: 'kataShared',
          fstype: '9p',
          options: ['version=9p2000.L'],
          mountPoint: `${SB}/shared`,
        },
      ],
      { containerId: 'c1' },
    );
    proveMount('5.10 9p', `${SB}/shared`, '9p', '9p');
  });
  await finish('5.10');
}

/** microvm: virtio-mmio disks, cold-plugged (no hot-plug on mmio), known by predicted name. */
async function microvm() {
  await scenario('mmioblk /dev/vdb', async () => {
    const point = `${SB}/disks/mmio`;
    await sandbox.addStorages(
      [{ driver: DRIVER_BLK_MMIO_TYPE, source: '/dev/vdb', fstype: 'ext4', mountPoint: point }],
      {
        containerId: 'c1',
      },
    );
    const m = proveMount('mmioblk /dev/vdb', point, 'ext4', 'mmio', /^\/dev\/vdb$/);
    check(
      'mmioblk: the disk sits on a virtio_mmio device',
      /virtio.mmio|LNRO0005/i.test(fs.realpathSync(`/sys/block/${blockOf(m)}`)),
      fs.realpathSync(`/sys/block/${blockOf(m)}`),
    );
  });
  await finish('mmioblk');
}

/**
 * arm64 `virt` booted with a device tree (no ACPI): the PCI root bus is a child of the host
 * bridge's platform device. A disk cold-plugged at 01 and one hot-plugged behind a root port at
 * 02/00 are the two requests that failed there before the root bus was located.
 */
async function arm64() {
  await scenario('arm64 blk cold-plugged at 01', async () => {
    const point = `${SB}/disks/cold`;
    await sandbox.addStorages(
      [{ driver: DRIVER_BLK_PCI_TYPE, source: '01', fstype: 'ext4', options: ['ro'], mountPoint: point }],
      {
        containerId: 'c1',
      },
    );
    const m = proveMount('arm64 blk 01', point, 'ext4', 'cold', /^\/dev\/vd/);
    const real = fs.realpathSync(`/sys/block/${blockOf(m)}`);
    check(
      "arm64: the disk sits under the platform device's root bus",
      /^\/sys\/devices\/platform\/[^/]+\/pci0000:00\/0000:00:01\.0\//.test(real),
      real,
    );
  });
  await scenario('arm64 blk hot-plugged at 02/00', async () => {
    const point = `${SB}/disks/hot`;
    await plugAndAdd(
      'rootport',
      [{ driver: DRIVER_BLK_PCI_TYPE, source: '02/00', fstype: 'ext4', mountPoint: point }],
      'c1',
    );
    const m = proveMount('arm64 blk 02/00 (pcie-root-port hot-plug)', point, 'ext4', 'hotplugged', /^\/dev\/vd/);
    const real = fs.realpathSync(`/sys/block/${blockOf(m)}`);
    check(
      'arm64: the hot-plugged disk is behind the root port at 02',
      /\/pci0000:00\/0000:00:02\.0\/0000:[0-9a-f]{2}:00\.0\/virtio/.test(real),
      real,
    );
  });
  await finish('arm64');
}

/** s390x: a virtio-blk-ccw disk hot-plugged with a devno, found through findCcwBlockDevice. */
async function s390x() {
  await scenario('blk-ccw hot-plugged at 0.0.0005', async () => {
    const point = `${SB}/disks/ccw`;
    await plugAndAdd(
      'ccw',
      [{ driver: DRIVER_BLK_CCW_TYPE, source: '0.0.0005', fstype: 'ext4', mountPoint: point }],
      'c1',
    );
    const m = proveMount('blk-ccw 0.0.0005', point, 'ext4', 'ccw', /^\/dev\/vd/);
    const real = fs.realpathSync(`/sys/block/${blockOf(m)}`);
    check(
      'blk-ccw: the disk is under css0/<subchannel>/0.0.0005',
      /^\/sys\/devices\/css0\/0\.0\.[0-9a-f]{4}\/0\.0\.0005\/virtio\d+\/block\//.test(real),
      real,
    );
  });
  await finish('s390x');
}

/**
 * dm-verity (the parity work's `verity_info=<json>`): images made on the host by veritysetup
 * (data and hash tree on one disk, --hash-offset). Their DmVerityInfo comes through the 9p
 * share, which the host fills before boot. Right root hash: mounts read-only and reads; a
 * corrupted data block: that read fails with EIO; a wrong root hash: refused, nothing left.
 */
async function verity() {
  const shared = `${SB}/shared`;
  await sandbox.addStorages([
    { driver: DRIVER_9P_TYPE, source: 'kataShared', fstype: '9p', mountPoint: shared, shared: true },
  ]);
  const info = JSON.parse(fs.readFileSync(`${shared}/verity.json`, 'utf8'));
  const storage = (source, point, vi) => ({
    driver: DRIVER_BLK_PCI_TYPE,
    source,
    fstype: 'ext4',
    options: ['ro'],
    driverOptions: [`verity_info=${JSON.stringify(vi)}`],
    mountPoint: point,
  });
  await scenario('dm-verity right root hash', async () => {
    const point = `${SB}/disks/verity`;
    await plugAndAdd('verity-good', [storage('05/00', point, info.good)], 'c1');
    const m = proveMount('dm-verity (right root hash)', point, 'ext4', 'verity', /^\/dev\/(mapper\/|dm-)/);
    check('dm-verity: mounted read-only', m && /(^|,)ro(,|$)/.test(m.options), m && m.options);
  });
  await scenario('dm-verity corrupted data block', async () => {
    const point = `${SB}/disks/corrupt`;
    await plugAndAdd('verity-corrupt', [storage('07/00', point, info.corrupt)], 'c1');
    let got;
    try {
      fs.readFileSync(`${point}/payload`);
      got = 'read succeeded';
    } catch (e) {
      got = e.code;
    }
    check('dm-verity: the corrupted block reads back EIO', got === 'EIO', got);
  });
  await scenario('dm-verity wrong root hash', async () => {
    const before = snapshot();
    const mappers = fs.existsSync('/dev/mapper') ? fs.readdirSync('/dev/mapper').sort().join(',') : '';
    let err;
    try {
      await plugAndAdd('verity-wrong', [storage('08/00', `${SB}/disks/wrong`, info.wrong)], 'c1');
    } catch (e) {
      err = e;
    }
    check('dm-verity: a wrong root hash is refused', !!err, err ? `${err.code} ${err.message}` : 'mounted');
    const after = fs.existsSync('/dev/mapper') ? fs.readdirSync('/dev/mapper').sort().join(',') : '';
    check(
      'dm-verity: refused leaves nothing behind (mountinfo, tree, /dev/mapper)',
      snapshot() === before && after === mappers,
      `${snapshot()} mapper: ${after}`,
    );
  });
  await sandbox.removeContainer('c1');
  await sandbox.destroy();
  check(
    'dm-verity: nothing left mounted or mapped',
    mounts().length === 0 &&
      (!fs.existsSync('/dev/mapper') || fs.readdirSync('/dev/mapper').every((n) => n === 'control')),
    JSON.stringify(mounts()),
  );
}

const plans = { q35, old, microvm, arm64, s390x, verity };

(async () => {
  say('node', {
    uptime: Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]),
    plan,
    mountApi: ks.effectiveMountApi('auto'),
  });
  if (!plans[plan]) check(`plan ${plan}`, false, 'unknown plan');
  else await plans[plan]();
  say('done', { passed: results.filter((r) => r.ok).length, failed: results.filter((r) => !r.ok).length });
})().catch((e) => {
  check('agent', false, e && e.stack);
  say('done', {});
});
