#!/usr/bin/env node
// @ts-check
// `npm run bench [-- --quick] [-- --rounds N]`: mount latency of this package next to the same
// system calls from a C loop (the physical limit) and next to spawning mount(8)/umount(8) (what a
// Node user does without us), plus option parsing, the PCI sysfs walk and sandbox scaling.
// Everything is measured in one run, methods taking turns in short blocks over several rounds, so
// the ratios hold on a shared, noisy machine even when the absolute figures drift.
'use strict';

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const roundsArg = argv.indexOf('--rounds');
const ROUNDS = roundsArg >= 0 ? Number(argv[roundsArg + 1]) : quick ? 2 : 5;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error(`kata-storage bench: --rounds needs a positive integer, not ${argv[roundsArg + 1]}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Environment: root, a private mount namespace, the addon, the C baseline.

if (process.getuid?.() !== 0) {
  console.error('kata-storage bench: mounting needs root (run as root: npm run bench)');
  process.exit(1);
}
if (process.env.KATA_BENCH_PRIVATE_NS !== '1') {
  // Nothing the benchmark mounts (or leaves behind if killed) may reach the host's mount table.
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', process.execPath, __filename, ...argv], {
    stdio: 'inherit',
    env: { ...process.env, KATA_BENCH_PRIVATE_NS: '1' },
  });
  process.exit(r.status ?? 1);
}

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
}

if (!fs.existsSync(path.join(root, 'dist', 'index.js')) || !fs.existsSync(path.join(root, 'build', 'Release'))) {
  console.error('kata-storage bench: building the package first (npm run build:all)');
  sh('npm', ['run', 'build:all'], { stdio: 'inherit' });
}
sh('cmake', ['-S', 'bench', '-B', 'build-bench', '-DCMAKE_BUILD_TYPE=Release'], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
sh('cmake', ['--build', 'build-bench'], { stdio: ['ignore', 'ignore', 'inherit'] });
const BASELINE = path.join(root, 'build-bench', 'kata_bench_baseline');

/** @type {any} */
const kata = require(root);
/** @type {any} The addon itself, for the hand-off measurement only. */
const binding = require(path.join(root, 'dist', 'native.js')).native;

// ---------------------------------------------------------------------------------------------
// Statistics.

const ns = () => Number(process.hrtime.bigint());

/** @param {number[]} xs @param {number} q */
function quantile(xs, q) {
  const s = Float64Array.from(xs).sort();
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
/** @param {number[]} xs */
const median = (xs) => quantile(xs, 0.5);

/**
 * One measured method on one target: per-cycle samples over all rounds (ns); per block of cycles,
 * the elapsed wall time per cycle (what matters with several in flight) and the CPU time per cycle
 * of the threads doing the work (see cpuNow), both reported as the median over blocks.
 */
class Series {
  constructor() {
    /** @type {number[]} */ this.samples = [];
    /** @type {number[]} */ this.roundSamples = [];
    /** @type {number[]} */ this.roundMedians = [];
    /** @type {number[]} */ this.blockWall = [];
    /** @type {number[]} */ this.blockCpu = [];
    this.cycles = 0;
  }
  /** @param {{samples: number[], wall: number, cpu: number}} run */
  add(run) {
    this.samples.push(...run.samples);
    this.roundSamples.push(...run.samples);
    this.blockWall.push(run.wall / run.samples.length);
    this.blockCpu.push(run.cpu / run.samples.length);
    this.cycles += run.samples.length;
  }
  endRound() {
    if (this.roundSamples.length > 0) this.roundMedians.push(median(this.roundSamples));
    this.roundSamples = [];
  }
  summary() {
    return {
      median_us: median(this.samples) / 1e3,
      p99_us: quantile(this.samples, 0.99) / 1e3,
      per_cycle_us: median(this.blockWall) / 1e3,
      cpu_per_cycle_us: median(this.blockCpu) / 1e3,
      cycles: this.cycles,
      round_medians_us: this.roundMedians.map((x) => round(x / 1e3, 2)),
    };
  }
}

/**
 * CPU time of this process (every thread, user + kernel), ns. getrusage is exact; the per-thread
 * figures in /proc/<pid>/task/<tid>/schedstat are not for a thread that is running (they are
 * brought up to date only when it is switched out), which is always the case for the JS thread.
 */
function cpuNow() {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1e3;
}

/** @param {number} x @param {number} digits */
function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------------------------------------
// Targets: what gets mounted, and how each method mounts it.

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kata-bench-'));
const dirs = Array.from({ length: 8 }, (_, i) => {
  const d = path.join(scratch, `t${i}`);
  fs.mkdirSync(d);
  return d;
});
const bindSource = path.join(scratch, 'src');
fs.mkdirSync(bindSource);
fs.writeFileSync(path.join(bindSource, 'file'), 'bench\n');

/** @type {string | undefined} */
let loopDevice;
function cleanup() {
  for (const d of [...dirs, path.join(scratch, 'sandbox')]) spawnSync('umount', ['-q', '-R', d]);
  if (loopDevice) spawnSync('losetup', ['-d', loopDevice]);
  loopDevice = undefined;
  fs.rmSync(scratch, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.on(sig, () => process.exit(130));
}

/** The loop device with a fresh ext4 image, or the reason there is none (ext4 is then skipped). */
function setUpLoop() {
  const image = path.join(scratch, 'ext4.img');
  try {
    fs.writeFileSync(image, '');
    fs.truncateSync(image, 16 << 20);
    sh('mkfs.ext4', ['-q', '-F', image], { stdio: 'ignore' });
    // Loop devices are shared by everyone on the machine: take whichever is free, detach it after.
    loopDevice = sh('losetup', ['--find', '--show', '--read-only', image], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
    return undefined;
  } catch (err) {
    return /** @type {Error} */ (err).message.split('\n')[0];
  }
}

/**
 * @typedef {{
 *   name: string, label: string, options: string[],
 *   source: () => string, fstype: string,
 *   cArgs: (dir: string) => string[], spawnArgs: (dir: string) => string[],
 *   iterations: number, spawnIterations: number,
 * }} Target
 */

/** @type {Target[]} */
const targets = [
  {
    name: 'tmpfs',
    label: 'tmpfs mount+umount',
    options: [],
    fstype: 'tmpfs',
    source: () => 'tmpfs',
    cArgs: (d) => [d],
    spawnArgs: (d) => ['-t', 'tmpfs', 'tmpfs', d],
    iterations: quick ? 60 : 400,
    spawnIterations: quick ? 8 : 40,
  },
  {
    name: 'bind',
    label: 'bind mount+umount',
    options: ['bind'],
    fstype: '',
    source: () => bindSource,
    cArgs: (d) => [bindSource, d],
    spawnArgs: (d) => ['--bind', bindSource, d],
    iterations: quick ? 40 : 300,
    spawnIterations: quick ? 5 : 25,
  },
  {
    name: 'bind-ro',
    label: 'bind,ro (+ remount)',
    options: ['bind', 'ro'],
    fstype: '',
    source: () => bindSource,
    cArgs: (d) => [bindSource, d],
    spawnArgs: (d) => ['--bind', '-o', 'ro', bindSource, d],
    iterations: quick ? 40 : 300,
    spawnIterations: quick ? 5 : 25,
  },
  {
    name: 'ext4-ro',
    label: 'ext4 ro on loop',
    options: ['ro'],
    fstype: 'ext4',
    source: () => /** @type {string} */ (loopDevice),
    cArgs: (d) => [/** @type {string} */ (loopDevice), d],
    spawnArgs: (d) => ['-t', 'ext4', '-o', 'ro', /** @type {string} */ (loopDevice), d],
    iterations: quick ? 40 : 300,
    spawnIterations: quick ? 5 : 25,
  },
];
const CONCURRENCY = [1, 2, 4, 8];

/** @param {string} op @param {number} iterations @param {number} warmup @param {string[]} args */
function runC(op, iterations, warmup, args) {
  const out = JSON.parse(sh(BASELINE, [op, String(iterations), String(warmup), ...args]));
  /** @type {number[]} */
  const samples = out.samples_ns;
  // The loop's own time: the program's start-up is not part of a cycle.
  return {
    samples,
    wall: samples.reduce((a, b) => a + b, 0),
    cpu: /** @type {number} */ (out.cpu_ns),
    result: out.result,
  };
}

// The C loop calls mount(2), so the package is measured through mount(2) too ('legacy'); the new
// mount API (fsopen/fsconfig/fsmount/move_mount, what 'auto' picks on this kernel) is its own
// method, judged against the same loop.
const NEW_API = kata.newMountApiSupport().complete;

/** @param {Target} t @param {number} n @param {'legacy' | 'new'} [api] */
function runSync(t, n, api = 'legacy') {
  const dir = dirs[0];
  const src = t.source();
  const samples = new Array(n);
  const opts = { mountApi: api };
  const c0 = cpuNow();
  const w0 = ns();
  for (let i = 0; i < n; i++) {
    const t0 = ns();
    kata.mountSync(src, dir, t.fstype, t.options, opts);
    kata.umountSync(dir);
    samples[i] = ns() - t0;
  }
  return { samples, wall: ns() - w0, cpu: cpuNow() - c0 };
}

const LEGACY = { mountApi: 'legacy' };

/** @param {Target} t @param {number} n @param {number} inFlight */
async function runAsync(t, n, inFlight) {
  const src = t.source();
  /** @type {number[]} */
  const samples = [];
  let left = n;
  const c0 = cpuNow();
  const w0 = ns();
  await Promise.all(
    dirs.slice(0, inFlight).map(async (dir) => {
      while (left > 0) {
        left--;
        const t0 = ns();
        await kata.mount(src, dir, t.fstype, t.options, LEGACY);
        await kata.umount(dir);
        samples.push(ns() - t0);
      }
    }),
  );
  return { samples, wall: ns() - w0, cpu: cpuNow() - c0 };
}

/** CPU time of waited-for children (mount(8), umount(8)), ns, from /proc/self/stat. */
function childrenCpu() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 (cutime, cstime) counted from 1; f[0] is field 3.
  return (Number(f[13]) + Number(f[14])) * (1e9 / CLOCK_TICKS);
}
const CLOCK_TICKS = Number(sh('getconf', ['CLK_TCK']).trim()) || 100;

/** @param {Target} t @param {number} n */
function runSpawn(t, n) {
  const dir = dirs[0];
  const samples = new Array(n);
  const c0 = cpuNow() + childrenCpu();
  const w0 = ns();
  for (let i = 0; i < n; i++) {
    const t0 = ns();
    const m = spawnSync('mount', t.spawnArgs(dir), { stdio: ['ignore', 'ignore', 'pipe'] });
    const u = spawnSync('umount', [dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    samples[i] = ns() - t0;
    if (m.status !== 0 || u.status !== 0) throw new Error(`mount(8)/umount(8) failed: ${m.stderr}${u.stderr}`);
  }
  return { samples, wall: ns() - w0, cpu: cpuNow() + childrenCpu() - c0 };
}

/**
 * The cost of going through a pool thread, alone: umount2 on a directory that is not a mount
 * point fails at once (EINVAL) without touching the mount table, so the sync and async calls
 * differ only by the hand-off to a kata-pool thread and the completion back on the JS thread.
 * Through the binding directly; both sides build the same error (the addon makes it).
 * @param {boolean} async @param {number} n
 */
async function runHandoff(async, n) {
  const dir = dirs[0];
  const samples = new Array(n);
  const c0 = cpuNow();
  const w0 = ns();
  for (let i = 0; i < n; i++) {
    const t0 = ns();
    const e = async
      ? await binding.umount(dir, false, false, false, 0)
      : binding.umountSync(dir, false, false, false, 0);
    samples[i] = ns() - t0;
    if (e?.errno === undefined) throw new Error(`umount of a non-mount did not fail: ${JSON.stringify(e)}`);
  }
  return { samples, wall: ns() - w0, cpu: cpuNow() - c0 };
}

// ---------------------------------------------------------------------------------------------
// Parsing, PCI walk, sandbox scaling.

const KATA_OPTIONS = ['rw,nosuid,nodev,relatime,size=65536k,mode=755,dax'];

/**
 * parses/s of one round: the median of several timed batches after a warm-up, by the wall clock
 * and by this process's CPU time (which a busy machine's other tenants do not inflate).
 */
function runParse() {
  const parse = kata.parseMountOptions;
  const batch = quick ? 50_000 : 200_000;
  const check = parse(KATA_OPTIONS);
  const F = kata.MountFlags;
  if (check.flags !== (F.NOSUID | F.NODEV | F.RELATIME) || check.data !== 'size=65536k,mode=755,dax') {
    throw new Error(`parseMountOptions gave an unexpected result: ${JSON.stringify(check)}`);
  }
  let sink = 0;
  for (let i = 0; i < batch; i++) sink += parse(KATA_OPTIONS).flags;
  /** @type {number[]} */
  const rates = [];
  /** @type {number[]} */
  const cpuRates = [];
  for (let b = 0; b < 5; b++) {
    const c0 = process.cpuUsage();
    const t0 = ns();
    for (let i = 0; i < batch; i++) sink += parse(KATA_OPTIONS).flags;
    const wall = ns() - t0;
    const c = process.cpuUsage(c0);
    rates.push(batch / (wall / 1e9));
    cpuRates.push(batch / ((c.user + c.system) / 1e6));
  }
  if (sink === 0) throw new Error('unreachable: keeps the loop from being optimised away');
  return { wall: median(rates), cpu: median(cpuRates) };
}

const PCI_PATH = '02';

/** @param {number} n */
async function runPci(n) {
  const samples = new Array(n);
  /** @type {string | undefined} */
  let result;
  const c0 = cpuNow();
  const w0 = ns();
  for (let i = 0; i < n; i++) {
    const t0 = ns();
    result = await kata.findPciBlockDevice(PCI_PATH);
    samples[i] = ns() - t0;
  }
  return { samples, wall: ns() - w0, cpu: cpuNow() - c0, result };
}

/**
 * The sandbox's allowed root, on a tmpfs as /run/kata-containers is in a guest. On the disk-backed
 * /tmp, the sandbox's mkdir/rmdir of 1,000 mount points measured ext4's journal (rmdir alone took
 * ~0.9 ms each, 37 % of the profile), not the sandbox.
 */
function sandboxRoot() {
  const allowed = path.join(scratch, 'sandbox');
  if (!fs.existsSync(allowed)) {
    fs.mkdirSync(allowed);
    kata.mountSync('tmpfs', allowed, 'tmpfs', ['mode=755']);
  }
  return allowed;
}

/** Per-storage ns of addStorages + removeContainer with `n` ephemeral tmpfs storages. */
async function runSandbox(/** @type {number} */ n) {
  const allowed = sandboxRoot();
  const sandbox = new kata.Sandbox({ allowedRoots: [allowed] });
  const storages = Array.from({ length: n }, (_, i) => ({
    driver: 'ephemeral',
    source: 'tmpfs',
    fstype: 'tmpfs',
    options: ['size=1m'],
    mountPoint: path.join(allowed, `e${i}`),
  }));
  const c0 = cpuNow();
  const t0 = ns();
  const held = await sandbox.addStorages(storages, { containerId: 'bench' });
  const t1 = ns();
  await sandbox.removeContainer('bench');
  const t2 = ns();
  const cpu = cpuNow() - c0;
  if (held.length !== n || sandbox.storages().size !== 0) throw new Error('sandbox did not add/remove every storage');
  return { add: (t1 - t0) / n, remove: (t2 - t1) / n, total: (t2 - t0) / n, cpu: cpu / n };
}

/** @type {any} */
let requestSandbox;
/**
 * `requests` requests of `n` ephemeral tmpfs storages each, added and released through one
 * long-lived Sandbox (as an agent's is), next to the C loop making the same system calls
 * (baseline.c `sandbox`). Through mount(2), like the C loop. Samples: ns per storage.
 * @param {number} n @param {number} requests
 */
async function runSandboxRequests(n, requests) {
  const allowed = sandboxRoot();
  requestSandbox ??= new kata.Sandbox({ allowedRoots: [allowed], mountApi: 'legacy' });
  const storages = Array.from({ length: n }, (_, i) => ({
    driver: 'ephemeral',
    source: 'tmpfs',
    fstype: 'tmpfs',
    options: ['size=1m'],
    mountPoint: path.join(allowed, `e${i}`),
  }));
  const samples = new Array(requests);
  const c0 = cpuNow();
  const w0 = ns();
  for (let i = 0; i < requests; i++) {
    const t0 = ns();
    await requestSandbox.addStorages(storages, { containerId: 'bench' });
    await requestSandbox.removeContainer('bench');
    samples[i] = (ns() - t0) / n;
  }
  const wall = ns() - w0;
  const cpu = cpuNow() - c0;
  if (requestSandbox.storages().size !== 0) throw new Error('sandbox did not release every storage');
  // Series divides by the number of samples; each sample here stands for n storages.
  return { samples, wall: wall / n, cpu: cpu / n };
}

/** @param {number} n @param {number} requests */
function runCSandbox(n, requests) {
  const r = runC('sandbox', requests, 1, [sandboxRoot(), String(n)]);
  return { samples: r.samples.map((x) => x / n), wall: r.wall / n, cpu: r.cpu / n };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const machine = {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    load_before: os.loadavg().map((x) => round(x, 2)),
  };
  console.log(
    `kata-storage bench${quick ? ' (quick)' : ''}: ${ROUNDS} rounds; ${machine.nproc} CPUs (${machine.cpu}), ` +
      `Linux ${machine.kernel}, Node ${machine.node}, load ${machine.load_before.join(' ')}`,
  );

  const noLoop = setUpLoop();
  if (noLoop !== undefined) {
    console.log(`ext4 on a loop device skipped: ${noLoop}`);
    targets.splice(
      targets.findIndex((t) => t.name === 'ext4-ro'),
      1,
    );
  }
  const hasPci = typeof kata.findPciBlockDevice === 'function';
  const hasSandbox = typeof kata.Sandbox === 'function';

  /** @type {Record<string, Record<string, Series>>} */
  const series = {};
  const get = (/** @type {string} */ t, /** @type {string} */ m) => ((series[t] ??= {})[m] ??= new Series());
  /** @type {{wall: number, cpu: number}[]} */
  const parseRates = [];
  /** @type {Record<number, {add: number, remove: number, total: number, cpu: number}[]>} */
  const sandboxRuns = { 10: [], 100: [], 1000: [] };
  let pciResult;

  // Methods take turns in short blocks, so a burst of load from the machine's other tenants
  // lands on all of them rather than on whichever happened to be running.
  const BLOCKS = quick ? 2 : 4;
  const METHODS = ['c', 'sync', ...(NEW_API ? ['syncnew'] : []), ...CONCURRENCY.map((c) => `async${c}`)];
  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`round ${r + 1}/${ROUNDS}...\n`);
    for (const t of targets) {
      const k = Math.ceil(t.iterations / BLOCKS);
      const warm = Math.max(5, k >> 3);
      runSync(t, warm);
      if (NEW_API) runSync(t, warm, 'new');
      for (const c of CONCURRENCY) await runAsync(t, warm, c);
      for (let b = 0; b < BLOCKS; b++) {
        for (const m of METHODS) {
          if (m === 'c') {
            get(t.name, m).add(runC(t.name, k, warm, t.cArgs(dirs[0])));
            // The async floor: the same cycle, each call handed to a C worker thread and back.
            if (t.name === 'tmpfs') get(t.name, 'chandoff').add(runC('handoff', k, warm, t.cArgs(dirs[0])));
          } else if (m === 'sync') get(t.name, m).add(runSync(t, k));
          else if (m === 'syncnew') get(t.name, m).add(runSync(t, k, 'new'));
          else get(t.name, m).add(await runAsync(t, k, Number(m.slice(5))));
        }
      }
      runSpawn(t, 2);
      get(t.name, 'spawn').add(runSpawn(t, t.spawnIterations));
      for (const m of [...METHODS, 'spawn', ...(t.name === 'tmpfs' ? ['chandoff'] : [])]) get(t.name, m).endRound();
    }
    {
      const n = quick ? 200 : 1000;
      await runHandoff(true, n >> 3);
      for (let b = 0; b < BLOCKS; b++) {
        get('handoff', 'sync').add(await runHandoff(false, n / BLOCKS));
        get('handoff', 'async1').add(await runHandoff(true, n / BLOCKS));
      }
      get('handoff', 'sync').endRound();
      get('handoff', 'async1').endRound();
    }
    parseRates.push(runParse());
    if (hasPci) {
      const n = quick ? 200 : 1000;
      await runPci(n >> 3);
      for (let b = 0; b < BLOCKS; b++) {
        const c = runC('pci', n / BLOCKS, n >> 4, ['/sys', '/dev', PCI_PATH]);
        get('pci', 'c').add(c);
        const j = await runPci(n / BLOCKS);
        get('pci', 'js').add(j);
        pciResult = { c: c.result, js: j.result };
      }
      get('pci', 'c').endRound();
      get('pci', 'js').endRound();
    }
    if (hasSandbox) {
      // One storage per request and 100, each next to its C loop, in turns.
      const per = { 1: quick ? 40 : 200, 100: quick ? 2 : 5 };
      if (r === 0) {
        await runSandboxRequests(1, 20);
        await runSandboxRequests(100, 1);
      }
      for (let b = 0; b < BLOCKS; b++) {
        for (const n of /** @type {const} */ ([1, 100])) {
          const k = Math.max(1, Math.ceil(per[n] / BLOCKS));
          get(`sandbox${n}`, 'c').add(runCSandbox(n, k));
          get(`sandbox${n}`, 'js').add(await runSandboxRequests(n, k));
        }
      }
      for (const n of [1, 100]) {
        get(`sandbox${n}`, 'c').endRound();
        get(`sandbox${n}`, 'js').endRound();
      }
      // The same 1,000 storages per size and round (100 sandboxes of 10, 10 of 100, one of
      // 1,000), sizes in turn, so each figure spans the same stretch of the machine's load.
      if (r === 0) await runSandbox(100);
      for (const n of [10, 1000, 100]) {
        /** @type {{add: number, remove: number, total: number, cpu: number}[]} */
        const group = [];
        for (let i = 0; i < 1000 / n; i++) group.push(await runSandbox(n));
        const mean = (/** @type {'add' | 'remove' | 'total' | 'cpu'} */ k) =>
          group.reduce((a, x) => a + x[k], 0) / group.length;
        sandboxRuns[n].push({ add: mean('add'), remove: mean('remove'), total: mean('total'), cpu: mean('cpu') });
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Report.
  /** @type {Record<string, any>} */
  const results = {
    machine: { ...machine, load_after: os.loadavg().map((x) => round(x, 2)) },
    quick,
    rounds: ROUNDS,
    mount: {},
    handoff: null,
    parse: {},
    pci: null,
    sandbox: null,
  };
  const labels = {
    c: 'raw C',
    chandoff: 'C on a worker + eventfd',
    sync: 'sync API',
    syncnew: 'sync, new mount API',
    async1: 'async, 1 in flight',
    async2: 'async, 2 in flight',
    async4: 'async, 4 in flight',
    async8: 'async, 8 in flight',
    spawn: 'spawn mount(8)',
  };
  const rows = [
    ['operation', 'method', 'median µs', 'p99 µs', 'µs/cycle', 'CPU µs/cycle', '× C (median)', '× C (CPU)'],
  ];
  for (const t of targets) {
    /** @type {Record<string, any>} */
    const out = {};
    const c = get(t.name, 'c').summary();
    for (const [m, s] of Object.entries(series[t.name])) {
      const sum = s.summary();
      out[m] = { ...sum, vs_c: sum.median_us / c.median_us, cpu_vs_c: sum.cpu_per_cycle_us / c.cpu_per_cycle_us };
      rows.push([
        t.label,
        labels[/** @type {keyof labels} */ (m)],
        sum.median_us.toFixed(1),
        sum.p99_us.toFixed(1),
        sum.per_cycle_us.toFixed(1),
        sum.cpu_per_cycle_us.toFixed(1),
        out[m].vs_c.toFixed(2),
        out[m].cpu_vs_c.toFixed(2),
      ]);
    }
    /** @type {Record<string, any>} */ (results.mount)[t.name] = out;
  }
  {
    const sy = get('handoff', 'sync').summary();
    const as = get('handoff', 'async1').summary();
    results.handoff = {
      sync: sy,
      async: as,
      overhead_us: as.median_us - sy.median_us,
      cpu_overhead_us: as.cpu_per_cycle_us - sy.cpu_per_cycle_us,
    };
    rows.push([
      'umount2 of a non-mount',
      'sync (no hand-off)',
      sy.median_us.toFixed(1),
      sy.p99_us.toFixed(1),
      sy.per_cycle_us.toFixed(1),
      sy.cpu_per_cycle_us.toFixed(1),
      '',
      '',
    ]);
    rows.push([
      'umount2 of a non-mount',
      'async (hand-off)',
      as.median_us.toFixed(1),
      as.p99_us.toFixed(1),
      as.per_cycle_us.toFixed(1),
      as.cpu_per_cycle_us.toFixed(1),
      `+${(as.median_us - sy.median_us).toFixed(1)} µs`,
      `+${(as.cpu_per_cycle_us - sy.cpu_per_cycle_us).toFixed(1)} µs`,
    ]);
  }
  const parsePerSec = median(parseRates.map((x) => x.wall));
  const parseCpuPerSec = median(parseRates.map((x) => x.cpu));
  results.parse = {
    options: KATA_OPTIONS,
    per_sec: parsePerSec,
    per_cpu_sec: parseCpuPerSec,
    rounds: parseRates.map((x) => ({ wall: Math.round(x.wall), cpu: Math.round(x.cpu) })),
  };
  rows.push([
    'parseMountOptions',
    'JS → native',
    `${(1e6 / parsePerSec).toFixed(3)}`,
    '',
    '',
    `${(1e6 / parseCpuPerSec).toFixed(3)}`,
    `${(parsePerSec / 1e6).toFixed(2)} M/s`,
    `${(parseCpuPerSec / 1e6).toFixed(2)} M/s`,
  ]);
  let pciRatio = null;
  if (hasPci) {
    const c = get('pci', 'c');
    const j = get('pci', 'js');
    const cs = c.summary();
    const js = j.summary();
    pciRatio = js.median_us / cs.median_us;
    results.pci = {
      path: PCI_PATH,
      resolved: pciResult,
      c: cs,
      js,
      vs_c: pciRatio,
      cpu_vs_c: js.cpu_per_cycle_us / cs.cpu_per_cycle_us,
    };
    rows.push([
      `findPciBlockDevice('${PCI_PATH}')`,
      'raw C walk',
      cs.median_us.toFixed(1),
      cs.p99_us.toFixed(1),
      cs.per_cycle_us.toFixed(1),
      cs.cpu_per_cycle_us.toFixed(1),
      '1.00',
      '1.00',
    ]);
    rows.push([
      `findPciBlockDevice('${PCI_PATH}')`,
      'API (await)',
      js.median_us.toFixed(1),
      js.p99_us.toFixed(1),
      js.per_cycle_us.toFixed(1),
      js.cpu_per_cycle_us.toFixed(1),
      pciRatio.toFixed(2),
      (js.cpu_per_cycle_us / cs.cpu_per_cycle_us).toFixed(2),
    ]);
  } else {
    rows.push([`findPciBlockDevice('${PCI_PATH}')`, 'not exported by this build', '', '', '', '', '', '']);
  }
  /** @type {Record<string, {c: any, js: any, vs_c: number, cpu_vs_c: number}>} */
  const perRequest = {};
  if (hasSandbox) {
    for (const n of [1, 100]) {
      const cs = get(`sandbox${n}`, 'c').summary();
      const js = get(`sandbox${n}`, 'js').summary();
      perRequest[n] = {
        c: cs,
        js,
        vs_c: js.median_us / cs.median_us,
        cpu_vs_c: js.cpu_per_cycle_us / cs.cpu_per_cycle_us,
      };
      const label = `Sandbox, ${n} ephemeral/request`;
      rows.push([
        label,
        'C syscalls, per storage',
        cs.median_us.toFixed(1),
        cs.p99_us.toFixed(1),
        cs.per_cycle_us.toFixed(1),
        cs.cpu_per_cycle_us.toFixed(1),
        '1.00',
        '1.00',
      ]);
      rows.push([
        label,
        'add+removeContainer',
        js.median_us.toFixed(1),
        js.p99_us.toFixed(1),
        js.per_cycle_us.toFixed(1),
        js.cpu_per_cycle_us.toFixed(1),
        perRequest[n].vs_c.toFixed(2),
        perRequest[n].cpu_vs_c.toFixed(2),
      ]);
    }
  }
  let scaling = null;
  let cpuScaling = null;
  if (hasSandbox) {
    /** @type {Record<string, any>} */
    const sb = {};
    for (const n of [10, 100, 1000]) {
      const runs = sandboxRuns[n];
      sb[n] = {
        rounds: runs.length,
        add_us: median(runs.map((x) => x.add)) / 1e3,
        remove_us: median(runs.map((x) => x.remove)) / 1e3,
        per_storage_us: median(runs.map((x) => x.total)) / 1e3,
        cpu_per_storage_us: median(runs.map((x) => x.cpu)) / 1e3,
      };
      rows.push([
        `Sandbox, ${n} ephemeral`,
        'add+removeContainer',
        sb[n].per_storage_us.toFixed(1),
        '',
        '',
        sb[n].cpu_per_storage_us.toFixed(1),
        'per storage',
        '',
      ]);
    }
    scaling = sb[1000].per_storage_us / sb[10].per_storage_us;
    cpuScaling = sb[1000].cpu_per_storage_us / sb[10].cpu_per_storage_us;
    results.sandbox = {
      ...sb,
      scaling_1000_vs_10: scaling,
      cpu_scaling_1000_vs_10: cpuScaling,
      per_request: perRequest,
    };
  } else {
    rows.push(['Sandbox addStorages', 'not exported by this build', '', '', '', '', '', '']);
  }

  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (/** @type {string[]} */ r) =>
    r
      .map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  console.log();
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));
  if (noLoop === undefined) {
    console.log(
      'ext4 with more than one in flight: the mounts share one superblock, so only the first\n' +
        'mount and the last umount reach the disk; compare ext4 on the first three methods.',
    );
  }

  const m = /** @type {Record<string, any>} */ (results.mount);
  const summary = {
    ratios: {
      tmpfs_sync_vs_c: round(m.tmpfs.sync.vs_c, 3),
      tmpfs_async1_vs_c: round(m.tmpfs.async1.vs_c, 3),
      spawn_vs_sync: round(median(get('tmpfs', 'spawn').samples) / median(get('tmpfs', 'sync').samples), 1),
      pci_vs_c: pciRatio === null ? null : round(pciRatio, 3),
      sandbox1_vs_c: perRequest[1] ? round(perRequest[1].vs_c, 3) : null,
      sandbox100_vs_c: perRequest[100] ? round(perRequest[100].vs_c, 3) : null,
      async1_vs_handoff: round(m.tmpfs.async1.median_us / m.tmpfs.chandoff.median_us, 3),
    },
    parse_per_sec: Math.round(parsePerSec),
    scaling_1000_vs_10: scaling === null ? null : round(scaling, 3),
    // Not a DESIGN 6 target: what the new mount API costs over mount(2) for a tmpfs cycle.
    new_api_vs_mount2: NEW_API
      ? round(median(get('tmpfs', 'syncnew').samples) / median(get('tmpfs', 'sync').samples), 3)
      : null,
  };
  // The same targets judged by CPU time per cycle, which the machine's other tenants inflate far
  // less than wall-clock latency: a thread hand-off that waits for a free CPU costs wall time only.
  const cpu = {
    tmpfs_sync_vs_c: round(m.tmpfs.sync.cpu_vs_c, 3),
    tmpfs_async1_vs_c: round(m.tmpfs.async1.cpu_vs_c, 3),
    spawn_vs_sync: round(m.tmpfs.spawn.cpu_per_cycle_us / m.tmpfs.sync.cpu_per_cycle_us, 1),
    pci_vs_c: results.pci === null ? null : round(/** @type {any} */ (results.pci).cpu_vs_c, 3),
    sandbox1_vs_c: perRequest[1] ? round(perRequest[1].cpu_vs_c, 3) : null,
    sandbox100_vs_c: perRequest[100] ? round(perRequest[100].cpu_vs_c, 3) : null,
    async1_vs_handoff: round(m.tmpfs.async1.cpu_per_cycle_us / m.tmpfs.chandoff.cpu_per_cycle_us, 3),
    parse_per_sec: Math.round(parseCpuPerSec),
    scaling_1000_vs_10: cpuScaling === null ? null : round(cpuScaling, 3),
  };
  const verdict = (/** @type {boolean | null} */ ok) => (ok === null ? 'n/a' : ok ? 'holds' : 'MISSED');
  /** @type {[string, number | null, number | null, (x: number) => boolean][]} */
  const checks = [
    ['sync tmpfs cycle ≤ 1.15× C', summary.ratios.tmpfs_sync_vs_c, cpu.tmpfs_sync_vs_c, (x) => x <= 1.15],
    ['async (1 in flight) ≤ 1.5× C', summary.ratios.tmpfs_async1_vs_c, cpu.tmpfs_async1_vs_c, (x) => x <= 1.5],
    ['async (1 in flight) ≤ 1.3× C hand-off', summary.ratios.async1_vs_handoff, cpu.async1_vs_handoff, (x) => x <= 1.3],
    ['Sandbox, 1 per request ≤ 2× C', summary.ratios.sandbox1_vs_c, cpu.sandbox1_vs_c, (x) => x <= 2],
    ['Sandbox, 100 per request ≤ 1.5× C', summary.ratios.sandbox100_vs_c, cpu.sandbox100_vs_c, (x) => x <= 1.5],
    ['≥ 50× faster than spawn', summary.ratios.spawn_vs_sync, cpu.spawn_vs_sync, (x) => x >= 50],
    ['parse ≥ 1M/s', summary.parse_per_sec, cpu.parse_per_sec, (x) => x >= 1e6],
    ['findPciBlockDevice ≤ 2× C', summary.ratios.pci_vs_c, cpu.pci_vs_c, (x) => x <= 2],
    ['per storage at 1000 ≤ 1.5× at 10', summary.scaling_1000_vs_10, cpu.scaling_1000_vs_10, (x) => x <= 1.5],
  ];
  const judge = (/** @type {number | null} */ x, /** @type {(x: number) => boolean} */ ok) =>
    `${verdict(x === null ? null : ok(x))} (${x === null ? '-' : x >= 1e5 ? x.toExponential(2) : x})`.padEnd(20);
  console.log();
  console.log(`${'target'.padEnd(42)} ${'wall clock'.padEnd(20)} CPU time`);
  for (const [name, wall, c, ok] of checks) console.log(`${name.padEnd(42)} ${judge(wall, ok)} ${judge(c, ok)}`);
  console.log(
    `load average during the run: ${machine.load_before.join(' ')} -> ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} on ${machine.nproc} CPUs`,
  );
  Object.assign(results, {
    summary,
    cpu_ratios: cpu,
    targets: Object.fromEntries(
      checks.map(([n, w, c, ok]) => [n, { wall: w === null ? null : ok(w), cpu: c === null ? null : ok(c) }]),
    ),
  });
  fs.writeFileSync(path.join(__dirname, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`(details: ${path.relative(process.cwd(), path.join(__dirname, 'results.json'))})`);
  console.log(JSON.stringify(summary));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
