// Soak: thousands of add/remove cycles by 50 concurrent containers sharing one volume. Nothing
// may leak (mounts, fds, loop devices), RSS must level off and the event loop must stay
// responsive. KATA_SOAK_CYCLES sets the total number of cycles (default 10,000).
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Sandbox, type Storage } from '../../lib/index';
import { cannotMount, mountsUnder, scratchDir } from '../helpers/mountinfo';

const openFds = (): number => readdirSync('/proc/self/fd').length;
// Loop devices are global and other processes use them: count the ones backed by our files.
const loopDevicesUnder = (dir: string): number =>
  readdirSync('/sys/block').filter((n) => {
    if (!n.startsWith('loop')) return false;
    try {
      return readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').startsWith(dir);
    } catch {
      return false;
    }
  }).length;

t.test('10,000 add/remove cycles across 50 concurrent containers leak nothing', { skip: cannotMount }, async (t) => {
  const total = Number(process.env.KATA_SOAK_CYCLES ?? 10000);
  const containers = 50;
  const perContainer = Math.ceil(total / containers);
  const root = scratchDir(t);
  const sandbox = new Sandbox({ allowedRoots: [root] });
  const shared: Storage = { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: ['size=64k'], mountPoint: join(root, 'shared'), shared: true };
  const own = (i: number): Storage[] => [
    shared,
    { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: ['size=16k', 'mode=750'], mountPoint: join(root, `c${i}`, 'scratch') },
    { driver: 'local', source: 'local', fstype: 'local', options: ['mode=0750'], mountPoint: join(root, `c${i}`, 'empty-dir') },
  ];

  const cycle = async (i: number, n: number): Promise<void> => {
    for (let k = 0; k < n; k++) {
      const id = `c${i}`;
      await sandbox.addStorages(own(i), { containerId: id });
      await sandbox.removeContainer(id);
    }
  };
  // Warm-up: JIT, the pool's threads, the first mounts.
  await Promise.all(Array.from({ length: containers }, (_, i) => cycle(i, 2)));
  const fds0 = openFds();
  const loops0 = loopDevicesUnder(root);
  global.gc?.();
  const rss0 = process.memoryUsage().rss;

  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: containers }, (_, i) => cycle(i, perContainer)));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  delay.disable();
  global.gc?.();
  const rss1 = process.memoryUsage().rss;
  const maxDelayMs = delay.max / 1e6;
  const growthMiB = (rss1 - rss0) / 2 ** 20;

  t.equal(sandbox.refcount(shared.mountPoint), 0, 'the shared volume has no references left');
  t.equal(sandbox.storages().size, 1, 'only the shared volume is still held (until destroy)');
  t.same(mountsUnder(root).map((m) => m.mountPoint), [shared.mountPoint], 'only the shared mount remains');
  await sandbox.destroy();
  t.same(mountsUnder(root), [], 'nothing mounted after destroy');
  t.equal(openFds(), fds0, 'no file descriptor leaked');
  t.equal(loopDevicesUnder(root), loops0, 'no loop device leaked');
  t.ok(growthMiB < 64, `RSS growth ${growthMiB.toFixed(1)} MiB stays bounded`);
  t.ok(maxDelayMs < 100, `max event-loop delay ${maxDelayMs.toFixed(1)} ms`);
  t.comment(
    `soak: ${perContainer * containers} cycles (${containers} containers) in ${seconds.toFixed(1)} s, ` +
      `${((perContainer * containers) / seconds).toFixed(0)} cycles/s; RSS ${(rss0 / 2 ** 20).toFixed(1)} -> ` +
      `${(rss1 / 2 ** 20).toFixed(1)} MiB (+${growthMiB.toFixed(1)}); event-loop delay p99 ` +
      `${(delay.percentile(99) / 1e6).toFixed(1)} ms, max ${maxDelayMs.toFixed(1)} ms; fds ${fds0}`,
  );
});
