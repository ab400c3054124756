// Soak: 10,000 add/remove cycles by 50 concurrent containers sharing one volume (the workload is
// test/soak/driver.js, run over dist/ by plain node). Nothing may leak (mounts, fds, loop
// devices), RSS must level off and the event loop must stay responsive.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { cannotMount } from '../helpers/mountinfo';

t.test('10,000 add/remove cycles across 50 concurrent containers leak nothing', { skip: cannotMount }, async (t) => {
  const out = execFileSync(process.execPath, ['--expose-gc', join(__dirname, 'driver.js')], {
    encoding: 'utf8',
    timeout: 600000,
  });
  const r = JSON.parse(out) as Record<
    | 'rss0'
    | 'rss1'
    | 'delayP99Ms'
    | 'delayMaxMs'
    | 'seconds'
    | 'cycles'
    | 'gcMaxMs'
    | 'refcountShared'
    | 'fds0'
    | 'fds1'
    | 'loops0'
    | 'loops1'
    | 'containers',
    number
  > & { entriesBeforeDestroy: string[]; mountedBeforeDestroy: string[]; mountedAfterDestroy: string[] };
  const growthMiB = (r.rss1 - r.rss0) / 2 ** 20;
  t.equal(r.refcountShared, 0, 'the shared volume has no references left');
  t.equal(r.entriesBeforeDestroy.length, 1, 'only the shared volume is still held (until destroy)');
  t.equal(r.mountedBeforeDestroy.length, 1, 'only the shared mount remains');
  t.same(r.mountedAfterDestroy, [], 'nothing mounted after destroy');
  t.equal(r.fds1, r.fds0, 'no file descriptor leaked');
  t.equal(r.loops1, r.loops0, 'no loop device leaked');
  // The heap grows to a steady state and stays (measured: +31 MiB after 5,000 cycles, +32 after
  // 20,000); a leak would grow with the cycle count.
  t.ok(growthMiB < 64, `RSS growth ${growthMiB.toFixed(1)} MiB stays bounded`);
  // The loop is saturated by design here (50 containers at once on 2 shared cores); these bound
  // what a request can be kept waiting. Measured figures are printed below and in the README.
  t.ok(r.delayP99Ms < 50, `event-loop delay p99 ${r.delayP99Ms.toFixed(1)} ms`);
  t.ok(r.delayMaxMs < 250, `max event-loop delay ${r.delayMaxMs.toFixed(1)} ms`);
  t.comment(
    `soak: ${r.cycles} cycles (${r.containers} containers) in ${r.seconds.toFixed(1)} s, ` +
      `${(r.cycles / r.seconds).toFixed(0)} cycles/s; RSS ${(r.rss0 / 2 ** 20).toFixed(1)} -> ${(r.rss1 / 2 ** 20).toFixed(1)} MiB ` +
      `(+${growthMiB.toFixed(1)}); event-loop delay p99 ${r.delayP99Ms.toFixed(1)} ms, max ${r.delayMaxMs.toFixed(1)} ms ` +
      `(longest GC pause ${r.gcMaxMs.toFixed(1)} ms); fds ${r.fds0}`,
  );
});
