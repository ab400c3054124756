#!/usr/bin/env node
// @ts-check
// `node bench/chart.js --results bench/results.json --goagent result.md --out docs/performance.svg`:
// the figure of docs/performance.md. Per-request latency (add + release, median) at 1 and at 100
// storages per request, for this package, Kata's Go agent and the C loop making the same system
// calls, from the shared Go-agent harness's tables and from `npm run bench`'s results. A reader
// compares bars faster than table cells. Plain SVG written here, so regenerating the figure after
// a new measurement needs nothing beyond Node.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

const SIZES = /** @type {const} */ ([1, 100]);
/** @typedef {'kata-storage' | 'go-agent' | 'C loop'} Program */
/** @type {Record<Program, {label: string, colour: string}>} */
const PROGRAMS = {
  'kata-storage': { label: 'kata-storage (Sandbox)', colour: '#2f6fb0' },
  'go-agent': { label: "Kata's Go agent", colour: '#3a9b5c' },
  'C loop': { label: 'C loop, same system calls', colour: '#8a8a8a' },
};
/** @typedef {{source: string, program: Program, n: number, us: number}} Bar */

/** Usage errors exit 2, unreadable or malformed inputs 1, as the package's own command does. */
class ChartError extends Error {
  /** @param {string} message @param {number} status */
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** @param {string} file @returns {string} */
function read(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ChartError(`cannot read ${file}: ${/** @type {Error} */ (err).message}`, 1);
  }
}

/**
 * The harness's result.md: `## N = <n> storages per request` headings, each followed by a
 * markdown table whose first columns are `| program | median |` (µs per request).
 * @param {string} text @param {string} file
 * @returns {{bars: Bar[], header: string[]}}
 */
function parseGoAgent(text, file) {
  /** @type {Bar[]} */
  const bars = [];
  let n = 0;
  for (const line of text.split('\n')) {
    const heading = /^## N = (\d+) /.exec(line);
    if (heading) n = Number(heading[1]);
    const row = /^\| *([^|]+?) *\| *([0-9.]+) *\|/.exec(line);
    if (!row || !n) continue;
    const program = /** @type {Program} */ (row[1]);
    if (!(program in PROGRAMS)) continue;
    bars.push({ source: 'harness', program, n, us: Number(row[2]) });
  }
  for (const n of SIZES) {
    for (const program of /** @type {Program[]} */ (Object.keys(PROGRAMS))) {
      if (!bars.some((b) => b.n === n && b.program === program)) {
        throw new ChartError(`${file}: no "| ${program} | <median> |" row under "## N = ${n} ..."`, 1);
      }
    }
  }
  const header = text
    .split('\n')
    .filter((l) => l.startsWith('# '))
    .map((l) =>
      l
        .slice(2)
        .replace(/;? ?load average.*$/, '')
        .replace(/, root \S+ \(\w+\)$/, ''),
    )
    .slice(0, 3);
  return { bars: bars.filter((b) => SIZES.includes(/** @type {1 | 100} */ (b.n))), header };
}

/**
 * bench/results.json: `sandbox.per_request[n]` holds per-storage medians (µs) for the Sandbox
 * (`js`) and the C loop (`c`); a request of n storages costs n times that.
 * @param {string} text @param {string} file @param {Date} when
 * @returns {{bars: Bar[], header: string[]}}
 */
function parseResults(text, file, when) {
  /** @type {any} */
  let r;
  try {
    r = JSON.parse(text);
  } catch (err) {
    throw new ChartError(`${file}: not JSON (${/** @type {Error} */ (err).message})`, 1);
  }
  /** @type {Bar[]} */
  const bars = [];
  for (const n of SIZES) {
    const per = r?.sandbox?.per_request?.[n];
    for (const [key, program] of /** @type {const} */ ([
      ['js', 'kata-storage'],
      ['c', 'C loop'],
    ])) {
      const us = per?.[key]?.median_us;
      if (typeof us !== 'number' || !(us > 0)) {
        throw new ChartError(`${file}: sandbox.per_request.${n}.${key}.median_us is not a positive number`, 1);
      }
      bars.push({ source: 'bench', program, n, us: us * n });
    }
  }
  const m = r.machine ?? {};
  const header = [
    `npm run bench${r.quick ? ' -- --quick' : ''}, ${r.rounds} rounds, ${when.toISOString().slice(0, 16)}Z: ` +
      `${m.nproc} CPUs, Linux ${m.kernel}, Node ${m.node}, load ${(m.load_before ?? []).join(' ')}`,
  ];
  return { bars, header };
}

/** @param {string} s */
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
/** @param {number} us */
const fmt = (us) => `${us >= 100 ? Math.round(us).toLocaleString('en-US') : us.toFixed(1)} µs`;

/** Round axis ticks from 0 past `max`: steps of 1, 2 or 5 times a power of ten. @param {number} max */
function ticks(max) {
  const raw = max / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * pow).find((s) => s >= raw) ?? 10 * pow;
  const out = [];
  for (let v = 0; v < max + step; v += step) out.push(v);
  return out;
}

/**
 * The figure: one panel per request size (its own scale, from 0), one horizontal bar per program
 * and source, the value at the bar's end.
 * @param {Bar[]} bars @param {string[]} notes @returns {string}
 */
function render(bars, notes) {
  const W = 820;
  const left = 250;
  const right = 110;
  const barH = 20;
  const gap = 6;
  const font = 'font-family="DejaVu Sans, Arial, sans-serif"';
  const out = [];
  let y = 34;
  out.push(
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="17" font-weight="bold">` +
      'Add + release latency per request (median, µs; shorter is faster)</text>',
  );
  const sources = [
    ['harness', 'Go-agent harness'],
    ['bench', 'npm run bench'],
  ];
  for (const n of SIZES) {
    const panel = bars.filter((b) => b.n === n);
    const scale = ticks(Math.max(...panel.map((b) => b.us)));
    const top = scale[scale.length - 1] ?? 1;
    const x = (/** @type {number} */ v) => left + ((W - left - right) * v) / top;
    y += 22;
    out.push(
      `<text x="12" y="${y}" font-size="15" font-weight="bold">N = ${n} ${n === 1 ? 'storage' : 'storages'} per request</text>`,
    );
    y += 10;
    const y0 = y;
    for (const [source, sourceLabel] of sources) {
      const group = panel.filter((b) => b.source === source);
      if (group.length === 0) continue;
      y += 16;
      out.push(`<text x="12" y="${y - 3}" font-size="12" font-style="italic" fill="#444">${esc(sourceLabel)}</text>`);
      for (const b of group) {
        const p = PROGRAMS[b.program];
        const w = Math.max(1, x(b.us) - left);
        out.push(
          `<text x="${left - 8}" y="${y + barH / 2 + 4}" text-anchor="end" font-size="13">${esc(p.label)}</text>`,
          `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${p.colour}" ` +
            `data-program="${esc(b.program)}" data-n="${n}" data-source="${source}" data-us="${b.us}">` +
            `<title>${esc(`${p.label}, ${sourceLabel}, N = ${n}: ${fmt(b.us)}`)}</title></rect>`,
          `<text x="${(left + w + 6).toFixed(1)}" y="${y + barH / 2 + 4}" font-size="13">${fmt(b.us)}</text>`,
        );
        y += barH + gap;
      }
    }
    // The axis: grid lines at each tick, labelled in µs per request.
    for (const v of scale) {
      out.push(
        `<line x1="${x(v).toFixed(1)}" y1="${y0}" x2="${x(v).toFixed(1)}" y2="${y}" stroke="#ccc" stroke-width="1"/>`,
        `<text x="${x(v).toFixed(1)}" y="${y + 14}" text-anchor="middle" font-size="11" fill="#444">` +
          `${v.toLocaleString('en-US')}</text>`,
      );
    }
    out.push(
      `<text x="${(left + (W - right)) / 2}" y="${y + 30}" text-anchor="middle" font-size="12" fill="#444">` +
        `µs per request of ${n} (add + release)</text>`,
    );
    y += 44;
  }
  for (const note of notes) {
    y += 15;
    out.push(`<text x="12" y="${y}" font-size="10.5" fill="#555">${esc(note)}</text>`);
  }
  y += 12;
  // Grid lines are drawn after the bars in the list but must sit behind them: move them first.
  const lines = out.filter((l) => l.startsWith('<line'));
  const rest = out.filter((l) => !l.startsWith('<line'));
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" ${font}>\n` +
    `<rect width="${W}" height="${y}" fill="#fff"/>\n` +
    `${[...lines, ...rest].join('\n')}\n</svg>\n`
  );
}

function main() {
  /** @type {ReturnType<typeof parseArgs<{options: {results: {type: 'string'}, goagent: {type: 'string'}, out: {type: 'string'}}}>>['values']} */
  let values;
  try {
    ({ values } = parseArgs({
      options: { results: { type: 'string' }, goagent: { type: 'string' }, out: { type: 'string' } },
    }));
  } catch (err) {
    throw new ChartError(/** @type {Error} */ (err).message, 2);
  }
  if (!values.out || (!values.results && !values.goagent)) {
    throw new ChartError(
      'usage: node bench/chart.js [--results results.json] [--goagent result.md] --out chart.svg',
      2,
    );
  }
  /** @type {Bar[]} */
  const bars = [];
  const notes = [];
  if (values.goagent) {
    const g = parseGoAgent(read(values.goagent), values.goagent);
    bars.push(...g.bars);
    notes.push(...g.header.map((h) => `Go-agent harness: ${h}`));
  }
  if (values.results) {
    const text = read(values.results);
    const r = parseResults(text, values.results, fs.statSync(values.results).mtime);
    bars.push(...r.bars);
    notes.push(...r.header);
  }
  fs.mkdirSync(path.dirname(path.resolve(values.out)), { recursive: true });
  fs.writeFileSync(values.out, render(bars, notes));
  console.log(`${values.out}: ${bars.length} bars`);
}

try {
  main();
} catch (err) {
  if (!(err instanceof ChartError)) throw err;
  console.error(`bench/chart.js: ${err.message}`);
  process.exitCode = err.status;
}
