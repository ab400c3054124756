import t from 'tap';
import { join } from 'node:path';
import { Sandbox, type Storage } from '../lib/index';
import { cannotMount, mountSnapshot, scratchDir } from './helpers/mountinfo';

// DESIGN 6: addStorages + removeContainer scale linearly. Per-storage cost at 1,000 must stay
// close to the cost at 100 (no scan of the table, the container list or mountinfo per storage).
t.test('addStorages + removeContainer cost per storage stays flat to 1,000', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const before = mountSnapshot();
  const perStorage = new Map<number, number>();
  for (const n of [10, 100, 1000]) {
    let best = Infinity;
    for (let round = 0; round < 2; round++) {
      const sb = new Sandbox({ allowedRoots: [root] });
      const storages: Storage[] = Array.from({ length: n }, (_, i) => ({
        driver: 'ephemeral',
        source: 'tmpfs',
        fstype: 'tmpfs',
        options: ['size=64k'],
        mountPoint: join(root, `c${n}`, `vol${i}`),
      }));
      const start = performance.now();
      await sb.addStorages(storages, { containerId: 'c' });
      const added = performance.now();
      t.equal(sb.storages().size, n);
      await sb.removeContainer('c');
      const end = performance.now();
      t.equal(sb.storages().size, 0);
      best = Math.min(best, (end - start) / n);
      t.comment(`n=${n}: add ${((added - start) / n).toFixed(3)} ms/storage, remove ${((end - added) / n).toFixed(3)} ms/storage`);
    }
    perStorage.set(n, best);
    t.comment(`n=${n}: best ${best.toFixed(3)} ms per storage (add + remove)`);
  }
  t.equal(mountSnapshot(), before, 'everything unmounted');
  const ratio = perStorage.get(1000)! / perStorage.get(100)!;
  t.comment(`per-storage cost 1000 vs 100: ${ratio.toFixed(2)}x; 100 vs 10: ${(perStorage.get(100)! / perStorage.get(10)!).toFixed(2)}x`);
  t.ok(ratio < 3, `flat: ${ratio.toFixed(2)}x`);
});
