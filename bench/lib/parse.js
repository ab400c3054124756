// @ts-check
// Option parsing: parseMountOptions of the option string Kata sends for a shared tmpfs, per second.
'use strict';

const { ns, median } = require('./stats');

const KATA_OPTIONS = ['rw,nosuid,nodev,relatime,size=65536k,mode=755,dax'];

/** @param {import('./env').Bench} b */
function optionParsing(b) {
  const { kata, quick } = b;
  /** @type {{wall: number, cpu: number}[]} */
  const rates = [];

  /**
   * parses/s of one round: the median of several timed batches after a warm-up, by the wall clock
   * and by this process's CPU time (which a busy machine's other tenants do not inflate).
   */
  function run() {
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
    const wall = [];
    /** @type {number[]} */
    const cpu = [];
    for (let i = 0; i < 5; i++) {
      const c0 = process.cpuUsage();
      const t0 = ns();
      for (let j = 0; j < batch; j++) sink += parse(KATA_OPTIONS).flags;
      const elapsed = ns() - t0;
      const c = process.cpuUsage(c0);
      wall.push(batch / (elapsed / 1e9));
      cpu.push(batch / ((c.user + c.system) / 1e6));
    }
    if (sink === 0) throw new Error('unreachable: keeps the loop from being optimised away');
    return { wall: median(wall), cpu: median(cpu) };
  }

  return {
    async round() {
      rates.push(run());
    },
    /** results.json's `parse`: parses per second over the rounds. @param {import('./table').Row[]} rows */
    report(rows) {
      const perSec = median(rates.map((x) => x.wall));
      const perCpuSec = median(rates.map((x) => x.cpu));
      rows.push([
        'parseMountOptions',
        'JS → native',
        `${(1e6 / perSec).toFixed(3)}`,
        '',
        '',
        `${(1e6 / perCpuSec).toFixed(3)}`,
        `${(perSec / 1e6).toFixed(2)} M/s`,
        `${(perCpuSec / 1e6).toFixed(2)} M/s`,
      ]);
      return {
        options: KATA_OPTIONS,
        per_sec: perSec,
        per_cpu_sec: perCpuSec,
        rounds: rates.map((x) => ({ wall: Math.round(x.wall), cpu: Math.round(x.cpu) })),
      };
    },
  };
}

module.exports = { optionParsing };
