#!/usr/bin/env node
// @ts-check
// `npm run bench [-- --quick] [-- --rounds N]`: mount latency of this package next to the same
// system calls from a C loop (the physical limit) and next to spawning mount(8)/umount(8) (what a
// Node user does without us), plus option parsing, the PCI sysfs walk and sandbox scaling.
// Everything is measured in one run and methods are interleaved round by round, so the ratios hold
// on a shared, noisy machine even when the absolute figures drift.
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
  console.error('kata-storage bench: building the package first (npm run build)');
  sh('npm', ['run', 'build'], { stdio: 'inherit' });
}
sh('cmake', ['-S', 'bench', '-B', 'build-bench', '-DCMAKE_BUILD_TYPE=Release'], { stdio: 'ignore' });
sh('cmake', ['--build', 'build-bench'], { stdio: ['ignore', 'ignore', 'inherit'] });
const BASELINE = path.join(root, 'build-bench', 'kata_bench_baseline');

/** @type {any} */
const kata = require(root);

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
 * One measured method on one target: per-cycle samples over all rounds (ns), and the elapsed wall
 * time of each round divided by its cycles (what matters with several in flight).
 */
class Series {
  constructor() {
    /** @type {number[]} */ this.samples = [];
    /** @type {number[]} */ this.roundMedians = [];
    this.wallNs = 0;
    this.cycles = 0;
  }
  /** @param {number[]} samples @param {number} wallNs */
  add(samples, wallNs) {
    this.samples.push(...samples);
    this.roundMedians.push(median(samples));
    this.wallNs += wallNs;
    this.cycles += samples.length;
  }
  summary() {
    return {
      median_us: median(this.samples) / 1e3,
      p99_us: quantile(this.samples, 0.99) / 1e3,
      per_cycle_us: this.wallNs / this.cycles / 1e3,
      cycles: this.cycles,
      round_medians_us: this.roundMedians.map((x) => round(x / 1e3, 2)),
    };
  }
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
  for (const d of dirs) spawnSync('umount', ['-q', d]);
  if (loopDevice) spawnSync('losetup', ['-d', loopDevice]);
  loopDevice = undefined;
  fs.rmSync(scratch, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.on(sig, () => process.exit(130));
}

function setUpLoop() {
  const image = path.join(scratch, 'ext4.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 16 << 20);
  sh('mkfs.ext4', ['-q', '-F', image], { stdio: 'ignore' });
  // Loop devices are shared by everyone on the machine: take whichever is free, detach it after.
  loopDevice = sh('losetup', ['--find', '--show', '--read-only', image]).trim();
  return loopDevice;
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
    name: 'tmpfs', label: 'tmpfs mount+umount', options: [], fstype: 'tmpfs', source: () => 'tmpfs',
    cArgs: (d) => [d], spawnArgs: (d) => ['-t', 'tmpfs', 'tmpfs', d],
    iterations: quick ? 60 : 400, spawnIterations: quick ? 8 : 40,
  },
  {
    name: 'bind', label: 'bind mount+umount', options: ['bind'], fstype: '', source: () => bindSource,
    cArgs: (d) => [bindSource, d], spawnArgs: (d) => ['--bind', bindSource, d],
    iterations: quick ? 40 : 300, spawnIterations: quick ? 5 : 25,
  },
  {
    name: 'bind-ro', label: 'bind,ro (+ remount)', options: ['bind', 'ro'], fstype: '', source: () => bindSource,
    cArgs: (d) => [bindSource, d], spawnArgs: (d) => ['--bind', '-o', 'ro', bindSource, d],
    iterations: quick ? 40 : 300, spawnIterations: quick ? 5 : 25,
  },
  {
    name: 'ext4-ro', label: 'ext4 ro on loop', options: ['ro'], fstype: 'ext4', source: () => /** @type {string} */ (loopDevice),
    cArgs: (d) => [/** @type {string} */ (loopDevice), d], spawnArgs: (d) => ['-t', 'ext4', '-o', 'ro', /** @type {string} */ (loopDevice), d],
    iterations: quick ? 40 : 300, spawnIterations: quick ? 5 : 25,
  },
];
const CONCURRENCY = [1, 2, 4, 8];

/** @param {string} op @param {number} iterations @param {number} warmup @param {string[]} args */
function runC(op, iterations, warmup, args) {
  const t0 = ns();
  const out = JSON.parse(sh(BASELINE, [op, String(iterations), String(warmup), ...args]));
  return { samples: /** @type {number[]} */ (out.samples_ns), wall: ns() - t0, result: out.result };
}

/** @param {Target} t @param {number} n */
function runSync(t, n) {
  const dir = dirs[0];
  const src = t.source();
  const samples = new Array(n);
  const w0 = ns();
  for (let i = 0; i < n; i++) {
    const t0 = ns();
    kata.mountSync(src, dir, t.fstype, t.options);
    kata.umountSync(dir);
    samples[i] = ns() - t0;
  }
  return { samples, wall: ns() - w0 };
}

/** @param {Target} t @param {number} n @param {number} inFlight */
async function runAsync(t, n, inFlight) {
  const src = t.source();
  /** @type {number[]} */
  const samples = [];
  let left = n;
  const w0 = ns();
  await Promise.all(
    dirs.slice(0, inFlight).map(async (dir) => {
      while (left > 0) {
        left--;
        const t0 = ns();
        await kata.mount(src, dir, t.fstype, t.options);
        await kata.umount(dir);
        samples.push(ns() - t0);
      }
    }),
  );
  return { samples, wall: ns() - w0 };
}

/** @param {Target} t @param {number} n */
function runSpawn(t, n) {
  const dir = dirs[0];
  const samples = new Array(n);
  const w0 = ns();
  for (let i = 0; i < n; i++) {
    const t0 = ns();
    const m = spawnSync('mount', t.spawnArgs(dir), { stdio: ['ignore', 'ignore', 'pipe'] });
    const u = spawnSync('umount', [dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    samples[i] = ns() - t0;
    if (m.status !== 0 || u.status !== 0) throw new Error(`mount(8)/umount(8) failed: ${m.stderr}${u.stderr}`);
  }
  return { samples, wall: ns() - w0 };
}

// ---------------------------------------------------------------------------------------------
// Parsing, PCI walk, sandbox scaling.

const KATA_OPTIONS = ['rw,nosuid,nodev,relatime,size=65536k,mode=755,dax'];

/** parses/s of one round: the median of several timed batches after a warm-up. */
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
  for (let b = 0; b < 5; b++) {
    const t0 = ns();
    for (let i = 0; i < batch; i++) sink += parse(KATA_OPTIONS).flags;
    rates.push(batch / ((ns() - t0) / 1e9));
  }
  if (sink === 0) throw new Error('unreachable: keeps the loop from being optimised away');
  return median(rates);
}

const PCI_PATH = '02';

/** @param {number} n */
async function runPci(n) {
  const samples = new Array(n);
  /** @type {string | undefined} */
  let result;
  const w0 = ns();
  for (let i = 0; i < n; i++) {
    const t0 = ns();
    result = await kata.findPciBlockDevice(PCI_PATH);
    samples[i] = ns() - t0;
  }
  return { samples, wall: ns() - w0, result };
}

/** Per-storage ns of addStorages + removeContainer with `n` ephemeral tmpfs storages. */
async function runSandbox(/** @type {number} */ n) {
  const allowed = path.join(scratch, 'sandbox');
  fs.mkdirSync(allowed, { recursive: true });
  const sandbox = new kata.Sandbox({ allowedRoots: [allowed] });
  const storages = Array.from({ length: n }, (_, i) => ({
    driver: 'ephemeral',
    source: 'tmpfs',
    fstype: 'tmpfs',
    options: ['size=1m'],
    mountPoint: path.join(allowed, `e${i}`),
  }));
  const t0 = ns();
  const held = await sandbox.addStorages(storages, { containerId: 'bench' });
  const t1 = ns();
  await sandbox.removeContainer('bench');
  const t2 = ns();
  if (held.length !== n || sandbox.storages().size !== 0) throw new Error('sandbox did not add/remove every storage');
  return { add: (t1 - t0) / n, remove: (t2 - t1) / n, total: (t2 - t0) / n };
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
  console.log(`kata-storage bench${quick ? ' (quick)' : ''}: ${ROUNDS} rounds; ${machine.nproc} CPUs (${machine.cpu}), ` +
    `Linux ${machine.kernel}, Node ${machine.node}, load ${machine.load_before.join(' ')}`);

  setUpLoop();
  const hasPci = typeof kata.findPciBlockDevice === 'function';
  const hasSandbox = typeof kata.Sandbox === 'function';

  /** @type {Record<string, Record<string, Series>>} */
  const series = {};
  const get = (/** @type {string} */ t, /** @type {string} */ m) => ((series[t] ??= {})[m] ??= new Series());
  /** @type {number[]} */
  const parseRates = [];
  /** @type {Record<number, {add: number, remove: number, total: number}[]>} */
  const sandboxRuns = { 10: [], 100: [], 1000: [] };
  let pciResult;

  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`round ${r + 1}/${ROUNDS}...\n`);
    for (const t of targets) {
      const warm = Math.max(5, t.iterations >> 4);
      let x = runC(t.name, t.iterations, warm, t.cArgs(dirs[0]));
      get(t.name, 'c').add(x.samples, x.wall);
      runSync(t, warm);
      x = runSync(t, t.iterations);
      get(t.name, 'sync').add(x.samples, x.wall);
      for (const c of CONCURRENCY) {
        await runAsync(t, warm, c);
        x = await runAsync(t, t.iterations, c);
        get(t.name, `async${c}`).add(x.samples, x.wall);
      }
      runSpawn(t, 2);
      x = runSpawn(t, t.spawnIterations);
      get(t.name, 'spawn').add(x.samples, x.wall);
    }
    parseRates.push(runParse());
    if (hasPci) {
      const n = quick ? 200 : 2000;
      const c = runC('pci', n, n >> 3, ['/sys', '/dev', PCI_PATH]);
      get('pci', 'c').add(c.samples, c.wall);
      await runPci(n >> 3);
      const j = await runPci(n);
      get('pci', 'js').add(j.samples, j.wall);
      pciResult = { c: c.result, js: j.result };
    }
    if (hasSandbox) {
      for (const n of [10, 100, 1000]) {
        if (quick && n === 1000 && r > 0) continue;
        const reps = n === 10 ? 20 : n === 100 ? 3 : 1;
        for (let i = 0; i < reps; i++) sandboxRuns[n].push(await runSandbox(n));
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Report.
  const results = { machine: { ...machine, load_after: os.loadavg().map((x) => round(x, 2)) }, quick, rounds: ROUNDS, mount: {}, parse: {}, pci: null, sandbox: null };
  const labels = { c: 'raw C', sync: 'sync API', async1: 'async, 1 in flight', async2: 'async, 2 in flight', async4: 'async, 4 in flight', async8: 'async, 8 in flight', spawn: 'spawn mount(8)' };
  const rows = [['operation', 'method', 'median µs', 'p99 µs', 'µs/cycle', '× C (median)']];
  for (const t of targets) {
    /** @type {Record<string, any>} */
    const out = {};
    const cMedian = median(get(t.name, 'c').samples);
    for (const [m, s] of Object.entries(series[t.name])) {
      const sum = s.summary();
      out[m] = { ...sum, vs_c: median(s.samples) / cMedian };
      rows.push([t.label, labels[/** @type {keyof labels} */ (m)], sum.median_us.toFixed(1), sum.p99_us.toFixed(1), sum.per_cycle_us.toFixed(1), (median(s.samples) / cMedian).toFixed(2)]);
    }
    /** @type {Record<string, any>} */ (results.mount)[t.name] = out;
  }
  const parsePerSec = median(parseRates);
  results.parse = { options: KATA_OPTIONS, per_sec: parsePerSec, rounds: parseRates.map((x) => Math.round(x)) };
  rows.push(['parseMountOptions', 'JS → native', `${(1e6 / parsePerSec).toFixed(3)}`, '', '', `${(parsePerSec / 1e6).toFixed(2)} M/s`]);
  let pciRatio = null;
  if (hasPci) {
    const c = get('pci', 'c');
    const j = get('pci', 'js');
    pciRatio = median(j.samples) / median(c.samples);
    results.pci = { path: PCI_PATH, resolved: pciResult, c: c.summary(), js: j.summary(), vs_c: pciRatio };
    rows.push([`findPciBlockDevice('${PCI_PATH}')`, 'raw C walk', c.summary().median_us.toFixed(1), c.summary().p99_us.toFixed(1), c.summary().per_cycle_us.toFixed(1), '1.00']);
    rows.push([`findPciBlockDevice('${PCI_PATH}')`, 'async API', j.summary().median_us.toFixed(1), j.summary().p99_us.toFixed(1), j.summary().per_cycle_us.toFixed(1), pciRatio.toFixed(2)]);
  } else {
    rows.push([`findPciBlockDevice('${PCI_PATH}')`, 'not exported by this build', '', '', '', '']);
  }
  let scaling = null;
  if (hasSandbox) {
    /** @type {Record<string, any>} */
    const sb = {};
    for (const n of [10, 100, 1000]) {
      const runs = sandboxRuns[n];
      sb[n] = {
        runs: runs.length,
        add_us: median(runs.map((x) => x.add)) / 1e3,
        remove_us: median(runs.map((x) => x.remove)) / 1e3,
        per_storage_us: median(runs.map((x) => x.total)) / 1e3,
      };
      rows.push([`Sandbox ${n} ephemeral`, 'add + removeContainer', sb[n].per_storage_us.toFixed(1), '', '', 'per storage']);
    }
    scaling = sb[1000].per_storage_us / sb[10].per_storage_us;
    results.sandbox = { ...sb, scaling_1000_vs_10: scaling };
  } else {
    rows.push(['Sandbox addStorages', 'not exported by this build', '', '', '', '']);
  }

  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (/** @type {string[]} */ r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log();
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));

  const m = /** @type {Record<string, any>} */ (results.mount);
  const summary = {
    ratios: {
      tmpfs_sync_vs_c: round(m.tmpfs.sync.vs_c, 3),
      tmpfs_async1_vs_c: round(m.tmpfs.async1.vs_c, 3),
      spawn_vs_sync: round(median(get('tmpfs', 'spawn').samples) / median(get('tmpfs', 'sync').samples), 1),
      pci_vs_c: pciRatio === null ? null : round(pciRatio, 3),
    },
    parse_per_sec: Math.round(parsePerSec),
    scaling_1000_vs_10: scaling === null ? null : round(scaling, 3),
  };
  const verdict = (/** @type {boolean | null} */ ok) => (ok === null ? 'n/a' : ok ? 'holds' : 'MISSED');
  const checks = [
    ['sync tmpfs cycle ≤ 1.15× C', summary.ratios.tmpfs_sync_vs_c <= 1.15],
    ['async (1 in flight) ≤ 1.5× C', summary.ratios.tmpfs_async1_vs_c <= 1.5],
    ['≥ 50× faster than spawn', summary.ratios.spawn_vs_sync >= 50],
    ['parse ≥ 1M/s', summary.parse_per_sec >= 1e6],
    ['findPciBlockDevice ≤ 2× C', pciRatio === null ? null : pciRatio <= 2],
    ['per storage at 1000 ≤ 1.5× at 10', scaling === null ? null : scaling <= 1.5],
  ];
  console.log();
  for (const [name, ok] of checks) console.log(`target: ${String(name).padEnd(34)} ${verdict(/** @type {boolean | null} */ (ok))}`);
  Object.assign(results, { summary, targets: Object.fromEntries(checks.map(([n, ok]) => [n, ok])) });
  fs.writeFileSync(path.join(__dirname, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`(details: ${path.relative(process.cwd(), path.join(__dirname, 'results.json'))})`);
  console.log(JSON.stringify(summary));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
