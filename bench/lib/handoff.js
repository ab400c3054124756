// @ts-check
// The cost of going through a pool thread, alone: umount2 on a directory that is not a mount point
// fails at once (EINVAL) without touching the mount table, so the sync and async calls differ only
// by the hand-off to a kata-pool thread and the completion back on the JS thread. Through the
// binding directly; both sides build the same error (the addon makes it).
'use strict';

const { ns, cpuNow } = require('./stats');
const { seriesRow } = require('./table');

/** @param {import('./env').Bench} b */
function umountHandoff(b) {
  const { binding, series, quick } = b;
  const dir = b.scratch.dirs[0];

  /** @param {boolean} async @param {number} n */
  async function run(async, n) {
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

  return {
    async round() {
      const n = quick ? 200 : 1000;
      await run(true, n >> 3);
      for (let i = 0; i < b.blocks; i++) {
        series.get('handoff', 'sync').add(await run(false, n / b.blocks));
        series.get('handoff', 'async1').add(await run(true, n / b.blocks));
      }
      series.endRound('handoff', ['sync', 'async1']);
    },
    /** results.json's `handoff`: both sides and what the hand-off adds. @param {import('./table').Row[]} rows */
    report(rows) {
      const sy = series.get('handoff', 'sync').summary();
      const as = series.get('handoff', 'async1').summary();
      const op = 'umount2 of a non-mount';
      rows.push(seriesRow(op, 'sync (no hand-off)', sy, '', ''));
      rows.push(
        seriesRow(
          op,
          'async (hand-off)',
          as,
          `+${(as.median_us - sy.median_us).toFixed(1)} µs`,
          `+${(as.cpu_per_cycle_us - sy.cpu_per_cycle_us).toFixed(1)} µs`,
        ),
      );
      return {
        sync: sy,
        async: as,
        overhead_us: as.median_us - sy.median_us,
        cpu_overhead_us: as.cpu_per_cycle_us - sy.cpu_per_cycle_us,
      };
    },
  };
}

module.exports = { umountHandoff };
