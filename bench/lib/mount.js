// @ts-check
// Mount cycles (mount + umount of tmpfs, bind, bind,ro and ext4 on a loop device) by every method:
// the C loop, the sync API through mount(2) and through the new mount API, the async API with 1 to
// 8 in flight, and spawning mount(8)/umount(8); for tmpfs also the C loop handing each call to a
// worker thread (the floor of any async design).
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const { ns, cpuNow } = require('./stats');
const { sh } = require('./env');
const { seriesRow } = require('./table');

/**
 * What gets mounted, and how each method mounts it.
 * @typedef {{
 *   name: string, label: string, options: string[],
 *   source: () => string, fstype: string,
 *   cArgs: (dir: string) => string[], spawnArgs: (dir: string) => string[],
 *   iterations: number, spawnIterations: number,
 * }} Target
 */

const CONCURRENCY = [1, 2, 4, 8];
const LEGACY = { mountApi: 'legacy' };
const LABELS = {
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

/** CPU time of waited-for children (mount(8), umount(8)), ns, from /proc/self/stat. */
function childrenCpu() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 (cutime, cstime) counted from 1; f[0] is field 3.
  return (Number(f[13]) + Number(f[14])) * (1e9 / CLOCK_TICKS);
}
const CLOCK_TICKS = Number(sh('getconf', ['CLK_TCK']).trim()) || 100;

/** @param {import('./env').Bench} b */
function mountCycles(b) {
  const { kata, quick, scratch, series } = b;
  const { dirs, bindSource } = scratch;
  const dir = dirs[0];
  // The C loop calls mount(2), so the package is measured through mount(2) too ('legacy'); the new
  // mount API (fsopen/fsconfig/fsmount/move_mount, what 'auto' picks on this kernel) is its own
  // method, judged against the same loop.
  const newApi = Boolean(kata.newMountApiSupport().complete);
  const loop = () => /** @type {string} */ (scratch.loopDevice);
  /**
   * A bind mount of the scratch source with `extra` options (mount(8) takes them with -o).
   * @param {string} name @param {string} label @param {string[]} extra @returns {Target}
   */
  const bindTarget = (name, label, extra) => ({
    name,
    label,
    options: ['bind', ...extra],
    fstype: '',
    source: () => bindSource,
    cArgs: (d) => [bindSource, d],
    spawnArgs: (d) => ['--bind', ...(extra.length > 0 ? ['-o', extra.join(',')] : []), bindSource, d],
    iterations: quick ? 40 : 300,
    spawnIterations: quick ? 5 : 25,
  });

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
    bindTarget('bind', 'bind mount+umount', []),
    bindTarget('bind-ro', 'bind,ro (+ remount)', ['ro']),
    {
      name: 'ext4-ro',
      label: 'ext4 ro on loop',
      options: ['ro'],
      fstype: 'ext4',
      source: loop,
      cArgs: (d) => [loop(), d],
      spawnArgs: (d) => ['-t', 'ext4', '-o', 'ro', loop(), d],
      iterations: quick ? 40 : 300,
      spawnIterations: quick ? 5 : 25,
    },
  ];
  const noLoop = scratch.setUpLoop();
  if (noLoop !== undefined) {
    console.log(`ext4 on a loop device skipped: ${noLoop}`);
    targets.splice(
      targets.findIndex((t) => t.name === 'ext4-ro'),
      1,
    );
  }

  /** @param {Target} t @param {number} n @param {'legacy' | 'new'} [api] */
  function runSync(t, n, api = 'legacy') {
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

  /** @param {Target} t @param {number} n @param {number} inFlight */
  async function runAsync(t, n, inFlight) {
    const src = t.source();
    /** @type {number[]} */
    const samples = [];
    let left = n;
    const c0 = cpuNow();
    const w0 = ns();
    await Promise.all(
      dirs.slice(0, inFlight).map(async (d) => {
        while (left > 0) {
          left--;
          const t0 = ns();
          await kata.mount(src, d, t.fstype, t.options, LEGACY);
          await kata.umount(d);
          samples.push(ns() - t0);
        }
      }),
    );
    return { samples, wall: ns() - w0, cpu: cpuNow() - c0 };
  }

  /** @param {Target} t @param {number} n */
  function runSpawn(t, n) {
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

  const methods = ['c', 'sync', ...(newApi ? ['syncnew'] : []), ...CONCURRENCY.map((c) => `async${c}`)];

  return {
    newApi,
    /** One round: every target in turn, its methods taking turns in blocks, spawn last. */
    async round() {
      for (const t of targets) {
        const k = Math.ceil(t.iterations / b.blocks);
        const warm = Math.max(5, k >> 3);
        runSync(t, warm);
        if (newApi) runSync(t, warm, 'new');
        for (const c of CONCURRENCY) await runAsync(t, warm, c);
        for (let i = 0; i < b.blocks; i++) {
          for (const m of methods) {
            if (m === 'c') {
              series.get(t.name, m).add(b.runC(t.name, k, warm, t.cArgs(dir)));
              // The async floor: the same cycle, each call handed to a C worker thread and back.
              if (t.name === 'tmpfs') series.get(t.name, 'chandoff').add(b.runC('handoff', k, warm, t.cArgs(dir)));
            } else if (m === 'sync') series.get(t.name, m).add(runSync(t, k));
            else if (m === 'syncnew') series.get(t.name, m).add(runSync(t, k, 'new'));
            else series.get(t.name, m).add(await runAsync(t, k, Number(m.slice(5))));
          }
        }
        runSpawn(t, 2);
        series.get(t.name, 'spawn').add(runSpawn(t, t.spawnIterations));
        series.endRound(t.name, [...methods, 'spawn', ...(t.name === 'tmpfs' ? ['chandoff'] : [])]);
      }
    },
    /**
     * Per target and method its summary and ratios to the C loop (results.json's `mount`).
     * @param {import('./table').Row[]} rows
     */
    report(rows) {
      /** @type {Record<string, Record<string, any>>} */
      const results = {};
      for (const t of targets) {
        /** @type {Record<string, any>} */
        const out = {};
        const c = series.get(t.name, 'c').summary();
        for (const [m, s] of Object.entries(series.byTarget[t.name])) {
          const sum = s.summary();
          out[m] = { ...sum, vs_c: sum.median_us / c.median_us, cpu_vs_c: sum.cpu_per_cycle_us / c.cpu_per_cycle_us };
          rows.push(
            seriesRow(
              t.label,
              LABELS[/** @type {keyof LABELS} */ (m)],
              sum,
              out[m].vs_c.toFixed(2),
              out[m].cpu_vs_c.toFixed(2),
            ),
          );
        }
        results[t.name] = out;
      }
      return results;
    },
    /** What the table needs said under it. */
    notes() {
      return noLoop === undefined
        ? [
            'ext4 with more than one in flight: the mounts share one superblock, so only the first\n' +
              'mount and the last umount reach the disk; compare ext4 on the first three methods.',
          ]
        : [];
    },
  };
}

module.exports = { mountCycles };
