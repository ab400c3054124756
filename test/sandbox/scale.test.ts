import t from 'tap';
import { join } from 'node:path';
import { Sandbox, type Storage } from '../../lib/index';
import { cannotMount, mountSnapshot, mountsUnder, scratchDir } from '../helpers/mountinfo';

// addStorages + removeContainer scale to 1,000 storages in one sandbox. That the cost per
// storage stays flat is measured by `npm run bench` (sandbox sizes 10/100/1,000 against a C loop),
// never by a timed unit test; this test proves the behaviour at each size: every storage really
// mounted and counted, and every one gone after the release.
t.test('addStorages + removeContainer at 10, 100 and 1,000 storages', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const before = mountSnapshot();
  for (const n of [10, 100, 1000]) {
    const sb = new Sandbox({ allowedRoots: [root] });
    const dir = join(root, `c${n}`);
    const storages: Storage[] = Array.from({ length: n }, (_, i) => ({
      driver: 'ephemeral',
      source: 'tmpfs',
      fstype: 'tmpfs',
      options: ['size=64k'],
      mountPoint: join(dir, `vol${i}`),
    }));
    const start = performance.now();
    await sb.addStorages(storages, { containerId: 'c' });
    const added = performance.now();
    t.equal(sb.storages().size, n, `n=${n}: ${n} entries`);
    const mounted = mountsUnder(dir);
    t.equal(mounted.length, n, `n=${n}: ${n} tmpfs mounts in mountinfo`);
    t.ok(
      mounted.every((m) => m.fstype === 'tmpfs'),
      `n=${n}: all of them tmpfs`,
    );
    t.ok(
      storages.every((s) => sb.refcount(s.mountPoint) === 1),
      `n=${n}: each held once`,
    );
    await sb.removeContainer('c');
    const end = performance.now();
    t.equal(sb.storages().size, 0, `n=${n}: table empty after the release`);
    t.same(mountsUnder(dir), [], `n=${n}: nothing mounted under the container's directory`);
    t.comment(
      `n=${n}: add ${((added - start) / n).toFixed(3)} ms/storage, remove ${((end - added) / n).toFixed(3)} ms/storage (information only)`,
    );
  }
  t.equal(mountSnapshot(), before, 'everything unmounted');
});
