// @ts-check
// What every measurement stands on: root in a private mount namespace, the built package and the
// C baseline, and the scratch directories and loop device the cycles mount.
'use strict';

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');

/**
 * Exits unless running as root; re-runs `script` inside `unshare -m --propagation private` unless
 * already there, so nothing the benchmark mounts (or leaves behind if killed) may reach the host's
 * mount table. Returns only in the private namespace.
 * @param {string} script @param {string[]} argv
 */
function enterPrivateNamespace(script, argv) {
  if (process.getuid?.() !== 0) {
    console.error('kata-storage bench: mounting needs root (run as root: npm run bench)');
    process.exit(1);
  }
  if (process.env.KATA_BENCH_PRIVATE_NS !== '1') {
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', process.execPath, script, ...argv], {
      stdio: 'inherit',
      env: { ...process.env, KATA_BENCH_PRIVATE_NS: '1' },
    });
    process.exit(r.status ?? 1);
  }
}

/** @param {string} cmd @param {string[]} args @param {import('node:child_process').ExecFileSyncOptions} [opts] */
function sh(cmd, args, opts = {}) {
  return String(execFileSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 256 << 20, ...opts }));
}

/**
 * One timed block of the C baseline (bench/baseline.c), built on first use.
 * @typedef {(op: string, iterations: number, warmup: number, args: string[]) =>
 *   import('./stats').Run & {result: any}} RunC
 */

/**
 * Builds the package if it is not built, and the C baseline; loads both.
 * @returns {{kata: any, binding: any, jobs: any, runC: RunC}} binding: the addon itself, for the
 *   hand-off measurement; jobs: dist/native/, whose applyStorageJobs/releaseStorageJobs are the
 *   two calls the Sandbox makes for a request, for the Sandbox family's split of its cost
 */
function load() {
  if (!fs.existsSync(path.join(root, 'dist', 'index.js')) || !fs.existsSync(path.join(root, 'build', 'Release'))) {
    console.error('kata-storage bench: building the package first (npm run build:all)');
    sh('npm', ['run', 'build:all'], { stdio: 'inherit' });
  }
  sh('cmake', ['-S', 'bench', '-B', 'build-bench', '-DCMAKE_BUILD_TYPE=Release'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  sh('cmake', ['--build', 'build-bench'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const baseline = path.join(root, 'build-bench', 'kata_bench_baseline');
  /** @type {RunC} */
  const runC = (op, iterations, warmup, args) => {
    const out = JSON.parse(sh(baseline, [op, String(iterations), String(warmup), ...args]));
    /** @type {number[]} */
    const samples = out.samples_ns;
    // The loop's own time: the program's start-up is not part of a cycle.
    return {
      samples,
      wall: samples.reduce((a, b) => a + b, 0),
      cpu: /** @type {number} */ (out.cpu_ns),
      result: out.result,
    };
  };
  const nativeJs = require(path.join(root, 'dist', 'native'));
  return { kata: require(root), binding: nativeJs.native, jobs: nativeJs, runC };
}

/**
 * The directories the cycles mount on (a temporary directory, removed at exit with whatever is
 * still mounted below it), the bind source, and the loop device of the ext4 target.
 */
class Scratch {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kata-bench-'));
    this.dirs = Array.from({ length: 8 }, (_, i) => {
      const d = path.join(this.dir, `t${i}`);
      fs.mkdirSync(d);
      return d;
    });
    /** The sandbox measurements' allowed root (made and mounted by ./sandbox.js). */
    this.sandbox = path.join(this.dir, 'sandbox');
    this.bindSource = path.join(this.dir, 'src');
    fs.mkdirSync(this.bindSource);
    fs.writeFileSync(path.join(this.bindSource, 'file'), 'bench\n');
    /** @type {string | undefined} */
    this.loopDevice = undefined;
    process.on('exit', () => this.cleanup());
    for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
      process.on(sig, () => process.exit(130));
    }
  }

  /** The loop device with a fresh ext4 image, or the reason there is none (ext4 is then skipped). */
  setUpLoop() {
    const image = path.join(this.dir, 'ext4.img');
    try {
      fs.writeFileSync(image, '');
      fs.truncateSync(image, 16 << 20);
      sh('mkfs.ext4', ['-q', '-F', image], { stdio: 'ignore' });
      // Loop devices are shared by everyone on the machine: take whichever is free, detach it after.
      this.loopDevice = sh('losetup', ['--find', '--show', '--read-only', image], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }).trim();
      return undefined;
    } catch (err) {
      return /** @type {Error} */ (err).message.split('\n')[0];
    }
  }

  cleanup() {
    for (const d of [...this.dirs, this.sandbox]) spawnSync('umount', ['-q', '-R', d]);
    if (this.loopDevice) spawnSync('losetup', ['-d', this.loopDevice]);
    this.loopDevice = undefined;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * What every measurement family gets: the package, the addon, the C baseline, the scratch
 * directories, the run's Series, and how many timed blocks a method gets per round.
 * @typedef {{
 *   quick: boolean, blocks: number, kata: any, binding: any, jobs: any, runC: RunC,
 *   scratch: Scratch, series: import('./stats').SeriesSet,
 * }} Bench
 */

module.exports = { enterPrivateNamespace, sh, load, Scratch };
