// The soak's workload, in plain JS over the compiled package (dist/), as an agent runs it: the
// tap process carries the TypeScript toolchain, whose large heap would make every GC pause,
// and so the event-loop figures, about the test harness instead of this library.
'use strict';
const { readdirSync, readFileSync, mkdtempSync, rmSync } = require('node:fs');
const { join } = require('node:path');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { Sandbox } = require('../../dist/index.js');

const openFds = () => readdirSync('/proc/self/fd').length;
// Loop devices are global and other processes use them: count the ones backed by our files.
const loopDevicesUnder = (dir) =>
  readdirSync('/sys/block').filter((n) => {
    if (!n.startsWith('loop')) return false;
    try {
      return readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').startsWith(dir);
    } catch {
      return false;
    }
  }).length;
const mountsUnder = (dir) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p) => p !== undefined && (p === dir || p.startsWith(`${dir}/`)));

async function main() {
  const total = Number(process.env.KATA_SOAK_CYCLES ?? 10000);
  const containers = 50;
  const perContainer = Math.ceil(total / containers);
  const root = mkdtempSync('/tmp/kata-soak-');
  const sandbox = new Sandbox({ allowedRoots: [root] });
  const shared = {
    driver: 'ephemeral',
    source: 'tmpfs',
    fstype: 'tmpfs',
    options: ['size=64k'],
    mountPoint: join(root, 'shared'),
    shared: true,
  };
  const own = (i) => [
    shared,
    {
      driver: 'ephemeral',
      source: 'tmpfs',
      fstype: 'tmpfs',
      options: ['size=16k', 'mode=750'],
      mountPoint: join(root, `c${i}`, 'scratch'),
    },
    {
      driver: 'local',
      source: 'local',
      fstype: 'local',
      options: ['mode=0750'],
      mountPoint: join(root, `c${i}`, 'empty-dir'),
    },
  ];
  const cycle = async (i, n) => {
    for (let k = 0; k < n; k++) {
      await sandbox.addStorages(own(i), { containerId: `c${i}` });
      await sandbox.removeContainer(`c${i}`);
    }
  };
  // Warm-up: JIT, the pool's threads, the first mounts.
  await Promise.all(Array.from({ length: containers }, (_, i) => cycle(i, 2)));
  const fds0 = openFds();
  const loops0 = loopDevicesUnder(root);
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  let gcMaxMs = 0;
  const gcs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMaxMs = Math.max(gcMaxMs, e.duration);
  });
  gcs.observe({ entryTypes: ['gc'] });
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: containers }, (_, i) => cycle(i, perContainer)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  delay.disable();
  gcs.disconnect();
  global.gc?.();
  const rss1 = process.memoryUsage().rss;
  const result = {
    cycles: perContainer * containers,
    containers,
    seconds,
    refcountShared: sandbox.refcount(shared.mountPoint),
    entriesBeforeDestroy: [...sandbox.storages().keys()],
    mountedBeforeDestroy: mountsUnder(root),
  };
  await sandbox.destroy();
  Object.assign(result, {
    mountedAfterDestroy: mountsUnder(root),
    fds0,
    fds1: openFds(),
    loops0,
    loops1: loopDevicesUnder(root),
    rss0,
    rss1,
    delayP99Ms: delay.percentile(99) / 1e6,
    delayMaxMs: delay.max / 1e6,
    gcMaxMs,
  });
  rmSync(root, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(result));
}

main().catch((err) => {
  process.stderr.write(String(err?.stack ?? err));
  process.exit(1);
});
