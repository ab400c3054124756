// @ts-check
// The PCI sysfs walk: findPciBlockDevice of a PCI path next to the C loop resolving the same path.
'use strict';

const { ns, cpuNow } = require('./stats');
const { seriesRow } = require('./table');

const PCI_PATH = '02';

/** @param {import('./env').Bench} b */
function pciWalk(b) {
  const { kata, series, quick } = b;
  /** @type {{c: unknown, js: unknown} | undefined} What each side resolved PCI_PATH to. */
  let resolved;

  /** @param {number} n */
  async function run(n) {
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

  return {
    async round() {
      const n = quick ? 200 : 1000;
      await run(n >> 3);
      for (let i = 0; i < b.blocks; i++) {
        const c = b.runC('pci', n / b.blocks, n >> 4, ['/sys', '/dev', PCI_PATH]);
        series.get('pci', 'c').add(c);
        const j = await run(n / b.blocks);
        series.get('pci', 'js').add(j);
        resolved = { c: c.result, js: j.result };
      }
      series.endRound('pci', ['c', 'js']);
    },
    /** results.json's `pci`: both sides and their ratio. @param {import('./table').Row[]} rows */
    report(rows) {
      const cs = series.get('pci', 'c').summary();
      const js = series.get('pci', 'js').summary();
      const vsC = js.median_us / cs.median_us;
      const cpuVsC = js.cpu_per_cycle_us / cs.cpu_per_cycle_us;
      const op = `findPciBlockDevice('${PCI_PATH}')`;
      rows.push(seriesRow(op, 'raw C walk', cs, '1.00', '1.00'));
      rows.push(seriesRow(op, 'API (await)', js, vsC.toFixed(2), cpuVsC.toFixed(2)));
      return { path: PCI_PATH, resolved, c: cs, js, vs_c: vsC, cpu_vs_c: cpuVsC };
    },
  };
}

module.exports = { pciWalk };
