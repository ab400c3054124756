// @ts-check
// The Sandbox path: requests of 1 and 100 ephemeral tmpfs storages through one long-lived Sandbox
// next to the C loop making the same system calls, the C floor under the library's rules and the
// request's two native calls alone; and how the cost per storage scales with the number of
// storages a sandbox holds (10, 100, 1,000).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { ns, cpuNow, median } = require('./stats');
const { seriesRow } = require('./table');
// The Sandbox's own translation of its mountApi option into the number a job carries.
const { mountApiOf } = require('../../dist/mount.js');

const PER_REQUEST = /** @type {const} */ ([1, 100]);
const SIZES = /** @type {const} */ ([10, 100, 1000]);

/** Per storage, ns: addStorages, removeContainer, both, and the CPU time of both. */
/** @typedef {{add: number, remove: number, total: number, cpu: number}} SandboxRun */

/** @param {import('./env').Bench} b */
function sandboxPath(b) {
  const { kata, jobs, series, quick, scratch } = b;
  /** @type {Record<number, SandboxRun[]>} */
  const sizeRuns = { 10: [], 100: [], 1000: [] };
  /** @type {any} */
  let requestSandbox;

  /**
   * The sandbox's allowed root, on a tmpfs as /run/kata-containers is in a guest. On the disk-backed
   * /tmp, the sandbox's mkdir/rmdir of 1,000 mount points measured ext4's journal (rmdir alone took
   * ~0.9 ms each, 37 % of the profile), not the sandbox.
   */
  function allowedRoot() {
    const allowed = scratch.sandbox;
    if (!fs.existsSync(allowed)) {
      fs.mkdirSync(allowed);
      kata.mountSync('tmpfs', allowed, 'tmpfs', ['mode=755']);
    }
    return allowed;
  }

  /** `n` ephemeral tmpfs storages below the allowed root. @param {number} n */
  function ephemeral(n) {
    const allowed = allowedRoot();
    return Array.from({ length: n }, (_, i) => ({
      driver: 'ephemeral',
      source: 'tmpfs',
      fstype: 'tmpfs',
      options: ['size=1m'],
      mountPoint: path.join(allowed, `e${i}`),
    }));
  }

  /**
   * addStorages + removeContainer with `n` ephemeral tmpfs storages on a new Sandbox.
   * @param {number} n @returns {Promise<SandboxRun>}
   */
  async function runSize(n) {
    const storages = ephemeral(n);
    const sandbox = new kata.Sandbox({ allowedRoots: [allowedRoot()] });
    const c0 = cpuNow();
    const t0 = ns();
    const held = await sandbox.addStorages(storages, { containerId: 'bench' });
    const t1 = ns();
    await sandbox.removeContainer('bench');
    const t2 = ns();
    const cpu = cpuNow() - c0;
    if (held.length !== n || sandbox.storages().size !== 0) throw new Error('sandbox did not add/remove every storage');
    return { add: (t1 - t0) / n, remove: (t2 - t1) / n, total: (t2 - t0) / n, cpu: cpu / n };
  }

  /**
   * `requests` requests of `n` ephemeral tmpfs storages each, added and released through one
   * long-lived Sandbox (as an agent's is), next to the C loop making the same system calls
   * (baseline.c `sandbox`). Through mount(2), like the C loop. Samples: ns per storage.
   * @param {number} n @param {number} requests
   */
  async function runRequests(n, requests) {
    const storages = ephemeral(n);
    requestSandbox ??= new kata.Sandbox({ allowedRoots: [allowedRoot()], mountApi: 'legacy' });
    const samples = new Array(requests);
    const c0 = cpuNow();
    const w0 = ns();
    for (let i = 0; i < requests; i++) {
      const t0 = ns();
      await requestSandbox.addStorages(storages, { containerId: 'bench' });
      await requestSandbox.removeContainer('bench');
      samples[i] = (ns() - t0) / n;
    }
    const wall = ns() - w0;
    const cpu = cpuNow() - c0;
    if (requestSandbox.storages().size !== 0) throw new Error('sandbox did not release every storage');
    // Series divides by the number of samples; each sample here stands for n storages.
    return { samples, wall: wall / n, cpu: cpu / n };
  }

  /**
   * The request's two native calls alone, made directly as the Sandbox makes them for this request
   * (dist/native/ applyStorageJobs, then releaseStorageJobs with the mounts and directories the
   * first reported, newest first), with no Sandbox around them: the addon's share of the Sandbox's
   * cost (its packing, Node-API calls, pool hand-offs when it goes there, the job's first pass), the rest
   * being what the Sandbox adds around them (its JS, and what running it costs the calls). Real
   * mounts, as the Sandbox's. Samples: ns per storage.
   * @param {number} n @param {number} requests
   */
  async function runJobs(n, requests) {
    const root = allowedRoot();
    /** @type {import('../../lib/native').NativeStorageJob[]} */
    const request = Array.from({ length: n }, (_, i) => ({
      root,
      rel: `e${i}`,
      leafFile: false,
      source: 'tmpfs',
      sourceBlock: false,
      acceptPremount: false,
      dirs: [],
      directoryOnly: false,
      mode: -1,
      fstype: 'tmpfs',
      options: ['size=1m'],
      api: mountApiOf('legacy'), // mount(2), as the Sandbox here and the C loop
      fsGroup: -1,
      fsGroupReadOnly: false,
      onRootMismatch: false,
      fsgid: -1,
    }));
    const samples = new Array(requests);
    const c0 = cpuNow();
    const w0 = ns();
    for (let i = 0; i < requests; i++) {
      const t0 = ns();
      const { outcomes, failed, error, refusal, ranHere } = await jobs.applyStorageJobs(request);
      if (failed >= 0) throw error ?? new Error(`the job refused ${refusal}`);
      // Newest first, as the Sandbox gives a container's storages back; on this thread when the
      // add ran on it, as the Sandbox does.
      const released = await jobs.releaseStorageJobs(
        outcomes
          .map((/** @type {import('../../lib/native').AppliedStorage} */ o) => ({
            mounts: o.mounted,
            created: o.created,
          }))
          .reverse(),
        0,
        ranHere,
      );
      samples[i] = (ns() - t0) / n;
      for (const { error: err, mountsLeft, leftovers } of released) {
        if (err !== undefined || mountsLeft !== 0 || leftovers.length !== 0)
          throw err ?? new Error('the release left mounts or directories behind');
      }
    }
    const wall = ns() - w0;
    const cpu = cpuNow() - c0;
    return { samples, wall: wall / n, cpu: cpu / n };
  }

  /**
   * The C loop (`sandbox`), or the floor under the library's rules (`sandbox-floor`: each mount onto
   * an O_NOFOLLOW fd of its directory, the add and the release each handed to a worker thread).
   * @param {'sandbox' | 'sandbox-floor'} op @param {number} n @param {number} requests
   */
  function runCRequests(op, n, requests) {
    const r = b.runC(op, requests, 1, [allowedRoot(), String(n)]);
    return { samples: r.samples.map((x) => x / n), wall: r.wall / n, cpu: r.cpu / n };
  }

  return {
    /** @param {number} r the round, from 0 */
    async round(r) {
      // One storage per request and 100, each next to its C loop, in turns.
      const per = { 1: quick ? 40 : 200, 100: quick ? 2 : 5 };
      if (r === 0) {
        await runJobs(1, 20);
        await runRequests(1, 20);
        await runRequests(100, 1);
      }
      for (let i = 0; i < b.blocks; i++) {
        for (const n of PER_REQUEST) {
          const k = Math.max(1, Math.ceil(per[n] / b.blocks));
          series.get(`sandbox${n}`, 'c').add(runCRequests('sandbox', n, k));
          series.get(`sandbox${n}`, 'floor').add(runCRequests('sandbox-floor', n, k));
          series.get(`sandbox${n}`, 'jobs').add(await runJobs(n, k));
          series.get(`sandbox${n}`, 'js').add(await runRequests(n, k));
        }
      }
      for (const n of PER_REQUEST) series.endRound(`sandbox${n}`, ['c', 'floor', 'jobs', 'js']);
      // The same 1,000 storages per size and round (100 sandboxes of 10, 10 of 100, one of
      // 1,000), sizes in turn, so each figure spans the same stretch of the machine's load.
      if (r === 0) await runSize(100);
      for (const n of [10, 1000, 100]) {
        /** @type {SandboxRun[]} */
        const group = [];
        for (let i = 0; i < 1000 / n; i++) group.push(await runSize(n));
        const mean = (/** @type {keyof SandboxRun} */ k) => group.reduce((a, x) => a + x[k], 0) / group.length;
        sizeRuns[n].push({ add: mean('add'), remove: mean('remove'), total: mean('total'), cpu: mean('cpu') });
      }
    },
    /**
     * results.json's `sandbox`: per size the cost per storage and the scaling from 10 to 1,000;
     * per request size the C loop, the C floor, the two native calls alone and the Sandbox, and
     * their ratios.
     * @param {import('./table').Row[]} rows
     */
    report(rows) {
      /**
       * @type {Record<number, {c: any, floor: any, jobs: any, js: any, vs_c: number, cpu_vs_c: number,
       *   floor_vs_c: number, cpu_floor_vs_c: number, vs_floor: number, cpu_vs_floor: number,
       *   jobs_vs_c: number, cpu_jobs_vs_c: number, vs_jobs: number, cpu_vs_jobs: number}>}
       */
      const perRequest = {};
      for (const n of PER_REQUEST) {
        const cs = series.get(`sandbox${n}`, 'c').summary();
        const floor = series.get(`sandbox${n}`, 'floor').summary();
        const alone = series.get(`sandbox${n}`, 'jobs').summary();
        const js = series.get(`sandbox${n}`, 'js').summary();
        /** `a` over `b` by the wall clock and by CPU time. @param {any} a @param {any} b */
        const over = (a, b) => [a.median_us / b.median_us, a.cpu_per_cycle_us / b.cpu_per_cycle_us];
        const [vs_c, cpu_vs_c] = over(js, cs);
        const [floor_vs_c, cpu_floor_vs_c] = over(floor, cs);
        const [vs_floor, cpu_vs_floor] = over(js, floor);
        const [jobs_vs_c, cpu_jobs_vs_c] = over(alone, cs);
        const [vs_jobs, cpu_vs_jobs] = over(js, alone);
        const ratios = { vs_c, cpu_vs_c, floor_vs_c, cpu_floor_vs_c, vs_floor, cpu_vs_floor };
        perRequest[n] = { c: cs, floor, jobs: alone, js, ...ratios, jobs_vs_c, cpu_jobs_vs_c, vs_jobs, cpu_vs_jobs };
        const label = `Sandbox, ${n} ephemeral/request`;
        /** A row of the table: `s` and its ratios to the C loop. @param {string} method @param {any} s */
        const row = (method, s) => {
          const [wall, cpu] = over(s, cs);
          rows.push(seriesRow(label, method, s, wall.toFixed(2), cpu.toFixed(2)));
        };
        row('C syscalls, per storage', cs);
        row('C floor: fd mount, 2 hand-offs', floor);
        row('its 2 native calls alone', alone);
        row('add+removeContainer', js);
      }
      /** @type {Record<number, any>} */
      const bySize = {};
      for (const n of SIZES) {
        const runs = sizeRuns[n];
        bySize[n] = {
          rounds: runs.length,
          add_us: median(runs.map((x) => x.add)) / 1e3,
          remove_us: median(runs.map((x) => x.remove)) / 1e3,
          per_storage_us: median(runs.map((x) => x.total)) / 1e3,
          cpu_per_storage_us: median(runs.map((x) => x.cpu)) / 1e3,
        };
        rows.push([
          `Sandbox, ${n} ephemeral`,
          'add+removeContainer',
          bySize[n].per_storage_us.toFixed(1),
          '',
          '',
          bySize[n].cpu_per_storage_us.toFixed(1),
          'per storage',
          '',
        ]);
      }
      return {
        ...bySize,
        scaling_1000_vs_10: bySize[1000].per_storage_us / bySize[10].per_storage_us,
        cpu_scaling_1000_vs_10: bySize[1000].cpu_per_storage_us / bySize[10].cpu_per_storage_us,
        per_request: perRequest,
      };
    },
  };
}

module.exports = { sandboxPath };
