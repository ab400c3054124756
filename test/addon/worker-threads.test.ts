import t from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { mount, umount } from '../../lib/index';
import { cannotMount, mountsUnder, scratchDir } from '../helpers/mountinfo';

const fixture = join(__dirname, '..', 'fixtures', 'worker-mounts.js');

function runWorker(
  target: string,
  cycles: number,
  leavePending: boolean,
): Promise<{ seen: number; data: string; errors: unknown[]; exitCode: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(fixture, { workerData: { target, cycles, leavePending }, execArgv: [] });
    let msg: { seen: number; data: string; errors: unknown[] } | undefined;
    w.on('message', (m) => (msg = m));
    w.on('error', reject);
    w.on('exit', (exitCode) =>
      msg ? resolve({ ...msg, exitCode }) : reject(new Error(`worker exited ${exitCode} without a result`)),
    );
  });
}

t.test('the addon works in several worker threads at once and in the main thread', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  const targets = [0, 1, 2, 3].map((i) => join(dir, `w${i}`));
  for (const d of [...targets, join(dir, 'main')]) mkdirSync(d);
  const mainLoop = (async () => {
    let n = 0;
    for (let i = 0; i < 10; i++) {
      await mount('tmpfs', join(dir, 'main'), 'tmpfs', ['size=16k']);
      if (mountsUnder(join(dir, 'main')).length === 1) n++;
      await umount(join(dir, 'main'));
    }
    return n;
  })();
  const results = await Promise.all(targets.map((d, i) => runWorker(d, 10, i % 2 === 0)));
  for (const r of results) {
    t.equal(r.seen, 10, 'every mount in the worker was visible in mountinfo');
    t.equal(r.data, 'size=1m');
    t.same(r.errors, [], 'no mount or umount failed');
    t.equal(r.exitCode, 0, 'worker exited cleanly');
  }
  t.equal(await mainLoop, 10, 'main thread mounted meanwhile');
  t.same(mountsUnder(dir), [], 'nothing left mounted');

  // Workers that come and go: the per-environment state is created and torn down each time.
  for (let i = 0; i < 5; i++) {
    const r = await runWorker(targets[0]!, 2, true);
    t.equal(r.seen, 2);
  }
});
