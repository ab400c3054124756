// @ts-check
// The bench's statistics: samples in ns, medians and quantiles over them, the CPU clock, and the
// Series each measured method on each target collects over the rounds.
'use strict';

/** The monotonic clock, ns. */
const ns = () => Number(process.hrtime.bigint());

/** @param {number[]} xs @param {number} q */
function quantile(xs, q) {
  const s = Float64Array.from(xs).sort();
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
/** @param {number[]} xs */
const median = (xs) => quantile(xs, 0.5);

/** @param {number} x @param {number} digits */
function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
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

/**
 * One timed block of cycles: per-cycle samples, the block's wall time and the CPU time of the
 * threads doing the work, ns.
 * @typedef {{samples: number[], wall: number, cpu: number}} Run
 */

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
  /** @param {Run} run */
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
/** @typedef {ReturnType<Series['summary']>} Summary */

/** Every Series of a run, by target and method, in the order they were first measured. */
class SeriesSet {
  constructor() {
    /** @type {Record<string, Record<string, Series>>} */
    this.byTarget = {};
  }
  /** @param {string} target @param {string} method */
  get(target, method) {
    return ((this.byTarget[target] ??= {})[method] ??= new Series());
  }
  /** @param {string} target @param {string[]} methods */
  endRound(target, methods) {
    for (const m of methods) this.get(target, m).endRound();
  }
}

module.exports = { ns, median, round, cpuNow, SeriesSet };
