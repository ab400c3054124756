#!/usr/bin/env node
// @ts-check
// `npm run bench [-- --quick] [-- --rounds N]`: mount latency of this package next to the same
// system calls from a C loop (the physical limit) and next to spawning mount(8)/umount(8) (what a
// Node user does without us), plus option parsing, the PCI sysfs walk and sandbox scaling.
// Everything is measured in one run, methods taking turns in short blocks over several rounds, so
// the ratios hold on a shared, noisy machine even when the absolute figures drift. The families
// measured live in bench/lib/; this file sequences their rounds and judges the performance targets
// (docs/performance.md).
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { round, SeriesSet } = require('./lib/stats');
const { enterPrivateNamespace, load, Scratch } = require('./lib/env');
const { printTable } = require('./lib/table');
const { mountCycles } = require('./lib/mount');
const { umountHandoff } = require('./lib/handoff');
const { optionParsing } = require('./lib/parse');
const { pciWalk } = require('./lib/pci');
const { sandboxPath } = require('./lib/sandbox');

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const roundsArg = argv.indexOf('--rounds');
const ROUNDS = roundsArg >= 0 ? Number(argv[roundsArg + 1]) : quick ? 2 : 5;
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error(`kata-storage bench: --rounds needs a positive integer, not ${argv[roundsArg + 1]}`);
  process.exit(2);
}

async function main() {
  enterPrivateNamespace(__filename, argv);
  const { kata, binding, jobs, runC } = load();
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

  // Methods take turns in short blocks, so a burst of load from the machine's other tenants
  // lands on all of them rather than on whichever happened to be running.
  const series = new SeriesSet();
  /** @type {import('./lib/env').Bench} */
  const bench = { quick, blocks: quick ? 2 : 4, kata, binding, jobs, runC, scratch: new Scratch(), series };
  const mount = mountCycles(bench);
  const handoff = umountHandoff(bench);
  const parse = optionParsing(bench);
  const pci = pciWalk(bench);
  const sandbox = sandboxPath(bench);
  for (let r = 0; r < ROUNDS; r++) {
    process.stderr.write(`round ${r + 1}/${ROUNDS}...\n`);
    for (const family of [mount, handoff, parse, pci, sandbox]) await family.round(r);
  }

  /** @type {import('./lib/table').Row[]} */
  const rows = [];
  const results = {
    machine: { ...machine, load_after: os.loadavg().map((x) => round(x, 2)) },
    quick,
    rounds: ROUNDS,
    mount: mount.report(rows),
    handoff: handoff.report(rows),
    parse: parse.report(rows),
    pci: pci.report(rows),
    sandbox: sandbox.report(rows),
  };
  printTable(rows);
  for (const note of mount.notes()) console.log(note);

  const m = results.mount;
  const perRequest = results.sandbox.per_request;
  /**
   * The target ratios by the wall clock (median latency), or by CPU time per cycle, which the
   * machine's other tenants inflate far less: a thread hand-off that waits for a free CPU costs
   * wall time only.
   * @param {'wall' | 'cpu'} by
   */
  const ratios = (by) => {
    // Every ratio's CPU-time twin is its key with a cpu_ prefix.
    /** @template {string} K @param {K} k @returns {K | `cpu_${K}`} */
    const key = (k) => (by === 'wall' ? k : /** @type {`cpu_${K}`} */ (`cpu_${k}`));
    const vs = key('vs_c');
    const per = by === 'wall' ? 'median_us' : 'cpu_per_cycle_us';
    return {
      tmpfs_sync_vs_c: round(m.tmpfs.sync[vs], 3),
      tmpfs_async1_vs_c: round(m.tmpfs.async1[vs], 3),
      spawn_vs_sync: round(m.tmpfs.spawn[per] / m.tmpfs.sync[per], 1),
      pci_vs_c: round(results.pci[vs], 3),
      sandbox1_vs_c: round(perRequest[1][vs], 3),
      sandbox100_vs_c: round(perRequest[100][vs], 3),
      async1_vs_handoff: round(m.tmpfs.async1[per] / m.tmpfs.chandoff[per], 3),
      // Not targets: the Sandbox floor (the request's system calls under the library's rules:
      // mounts onto an O_NOFOLLOW fd, no blocking call on the JS thread) against the C loop, and
      // the Sandbox against the floor; the request's two native calls alone (jobs) against the C
      // loop, and the Sandbox against them.
      sandbox1_floor_vs_c: round(perRequest[1][key('floor_vs_c')], 3),
      sandbox1_vs_floor: round(perRequest[1][key('vs_floor')], 3),
      sandbox100_floor_vs_c: round(perRequest[100][key('floor_vs_c')], 3),
      sandbox100_vs_floor: round(perRequest[100][key('vs_floor')], 3),
      sandbox1_jobs_vs_c: round(perRequest[1][key('jobs_vs_c')], 3),
      sandbox1_vs_jobs: round(perRequest[1][key('vs_jobs')], 3),
      sandbox100_jobs_vs_c: round(perRequest[100][key('jobs_vs_c')], 3),
      sandbox100_vs_jobs: round(perRequest[100][key('vs_jobs')], 3),
    };
  };
  const summary = {
    ratios: ratios('wall'),
    parse_per_sec: Math.round(results.parse.per_sec),
    scaling_1000_vs_10: round(results.sandbox.scaling_1000_vs_10, 3),
    // Not a target: what the new mount API costs over mount(2) for a tmpfs cycle.
    new_api_vs_mount2: mount.newApi ? round(m.tmpfs.syncnew.median_us / m.tmpfs.sync.median_us, 3) : null,
  };
  const cpu = {
    ...ratios('cpu'),
    parse_per_sec: Math.round(results.parse.per_cpu_sec),
    scaling_1000_vs_10: round(results.sandbox.cpu_scaling_1000_vs_10, 3),
  };
  const wall = {
    ...summary.ratios,
    parse_per_sec: summary.parse_per_sec,
    scaling_1000_vs_10: summary.scaling_1000_vs_10,
  };
  /** @type {[string, keyof typeof cpu, (x: number) => boolean][]} */
  const targets = [
    ['sync tmpfs cycle ≤ 1.15× C', 'tmpfs_sync_vs_c', (x) => x <= 1.15],
    ['async (1 in flight) ≤ 1.5× C', 'tmpfs_async1_vs_c', (x) => x <= 1.5],
    ['async (1 in flight) ≤ 1.3× C hand-off', 'async1_vs_handoff', (x) => x <= 1.3],
    ['Sandbox, 1 per request ≤ 2× C', 'sandbox1_vs_c', (x) => x <= 2],
    ['Sandbox, 100 per request ≤ 1.5× C', 'sandbox100_vs_c', (x) => x <= 1.5],
    ['≥ 50× faster than spawn', 'spawn_vs_sync', (x) => x >= 50],
    ['parse ≥ 1M/s', 'parse_per_sec', (x) => x >= 1e6],
    ['findPciBlockDevice ≤ 2× C', 'pci_vs_c', (x) => x <= 2],
    ['per storage at 1000 ≤ 1.5× at 10', 'scaling_1000_vs_10', (x) => x <= 1.5],
  ];
  const judge = (/** @type {number} */ x, /** @type {(x: number) => boolean} */ ok) =>
    `${ok(x) ? 'holds' : 'MISSED'} (${x >= 1e5 ? x.toExponential(2) : x})`.padEnd(20);
  console.log();
  console.log(`${'target'.padEnd(42)} ${'wall clock'.padEnd(20)} CPU time`);
  for (const [name, key, ok] of targets) {
    console.log(`${name.padEnd(42)} ${judge(wall[key], ok)} ${judge(cpu[key], ok)}`);
  }
  console.log(
    `load average during the run: ${machine.load_before.join(' ')} -> ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')} on ${machine.nproc} CPUs`,
  );
  const file = path.join(__dirname, 'results.json');
  const all = {
    ...results,
    summary,
    cpu_ratios: cpu,
    targets: Object.fromEntries(targets.map(([n, key, ok]) => [n, { wall: ok(wall[key]), cpu: ok(cpu[key]) }])),
  };
  fs.writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
  console.log(`(details: ${path.relative(process.cwd(), file)})`);
  console.log(JSON.stringify(summary));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
