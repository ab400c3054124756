// @ts-check
// The table `npm run bench` prints: one row per method and operation.
'use strict';

/**
 * Operation, method, median µs, p99 µs, µs/cycle, CPU µs/cycle, and two comparisons (× C by the
 * median and by CPU time, or what a family puts there instead).
 * @typedef {string[]} Row
 */

const HEADER = ['operation', 'method', 'median µs', 'p99 µs', 'µs/cycle', 'CPU µs/cycle', '× C (median)', '× C (CPU)'];

/**
 * The row of one Series' summary, its four figures to 0.1 µs.
 * @param {string} operation @param {string} method @param {import('./stats').Summary} s
 * @param {string} byMedian @param {string} byCpu
 * @returns {Row}
 */
function seriesRow(operation, method, s, byMedian, byCpu) {
  return [
    operation,
    method,
    s.median_us.toFixed(1),
    s.p99_us.toFixed(1),
    s.per_cycle_us.toFixed(1),
    s.cpu_per_cycle_us.toFixed(1),
    byMedian,
    byCpu,
  ];
}

/** Prints the header and the rows, names left-aligned, figures right-aligned. @param {Row[]} rows */
function printTable(rows) {
  const all = [HEADER, ...rows];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (/** @type {Row} */ r) =>
    r
      .map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  console.log();
  console.log(line(HEADER));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

module.exports = { seriesRow, printTable };
