// A request's storages applied parents first, and no new mount over a storage the sandbox holds:
// real tmpfs mounts, the mount tree read back from mountinfo.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, StorageError, defaultRegistry, storageTracing, type Storage } from '../../lib/index';
import { cannotMount, mountAt, mountSnapshot, scratchDir } from '../helpers/mountinfo';
import { rejection } from '../helpers/rejection';
import { treeSnapshot } from '../helpers/tree';
import { inCallerOrder, parentsFirst } from '../../lib/request-order';

const tmpfs = (mountPoint: string): Storage => ({
  driver: 'ephemeral',
  source: 'tmpfs',
  fstype: 'tmpfs',
  options: ['size=1m'],
  mountPoint,
});

/** True when the topmost mount at `child` sits on the topmost mount at `parent`. */
const onTopOf = (child: string, parent: string): boolean => mountAt(child)?.parent === mountAt(parent)?.id;

t.test('parentsFirst: a stable sort by depth; inCallerOrder puts the answers back', async (t) => {
  const plan = ['/r/a/b/c', '/r/x', '/r/a/b', '/r/a', '/r/y/z'].map((mountPoint) => ({ storage: { mountPoint } }));
  const sorted = parentsFirst(plan, new Map());
  t.same(
    sorted.map((p) => p.storage.mountPoint),
    ['/r/a', '/r/a/b', '/r/a/b/c', '/r/x', '/r/y/z'],
    'each after the storages above it, shallowest first; otherwise the caller order',
  );
  t.same(
    inCallerOrder(
      sorted,
      sorted.map((p) => p.storage.mountPoint),
    ),
    plan.map((p) => p.storage.mountPoint),
  );
  // Nothing nested, or every parent listed first: applied exactly as listed.
  const inOrder = ['/r/b/deep/er', '/r/a', '/r/a/b', '/r/c'].map((mountPoint) => ({ storage: { mountPoint } }));
  t.equal(parentsFirst(inOrder, new Map()), inOrder, 'nothing to move: the same array');
  t.same(inCallerOrder(inOrder, ['h']), ['h']);
  // A held storage's own mounts count, not only its mount point; a held mount point is not covering.
  const held = new Map([['/r/e', { mounts: [{ path: '/r/e' }, { path: '/r/aux/inner' }] }]]);
  t.throws(() => parentsFirst([{ storage: { mountPoint: '/r/aux' } }], held), {
    code: 'ERR_MOUNT_POINT_COVERS_STORAGE',
    value: '/r/aux',
    covered: '/r/aux/inner',
  });
  t.throws(() => parentsFirst([{ storage: { mountPoint: '/r/q' } }], new Map(), ['/r/q/being-mounted']), {
    code: 'ERR_MOUNT_POINT_COVERS_STORAGE',
    covered: '/r/q/being-mounted',
  });
  t.throws(() => parentsFirst([{ storage: { mountPoint: '/' } }], held), { code: 'ERR_MOUNT_POINT_COVERS_STORAGE' });
  t.doesNotThrow(() => parentsFirst([{ storage: { mountPoint: '/r/e' } }], held), 'only a reference more');
  t.doesNotThrow(() => parentsFirst([{ storage: { mountPoint: '/r/ee' } }], held), 'a sibling with a longer name');
});

t.test('for real', { skip: cannotMount }, async (t) => {
  // The native one-job path, and create() one storage at a time (what a tracer gets).
  for (const traced of [false, true]) {
    t.test(
      `[child, parent] in one request: the parent first, the child on top (${traced ? 'create()' : 'one job'})`,
      async (t) => {
        if (traced) {
          const subscriber = { start: () => undefined };
          storageTracing.storage.subscribe(subscriber);
          t.teardown(() => void storageTracing.storage.unsubscribe(subscriber));
        }
        const root = scratchDir(t);
        const parent = join(root, 'p');
        const child = join(parent, 'c', 'd');
        const other = join(root, 'o');
        const before = mountSnapshot();
        const sb = new Sandbox({ allowedRoots: [root] });
        const held = await sb.addStorages([tmpfs(child), tmpfs(other), tmpfs(parent)], { containerId: 'c1' });
        t.same(held, [child, other, parent], "the held paths answer the caller's order");
        t.ok(onTopOf(child, parent), 'the child is mounted on the parent tmpfs, not hidden beneath it');
        writeFileSync(join(child, 'f'), 'child');
        t.equal(readFileSync(join(child, 'f'), 'utf8'), 'child');
        t.equal(sb.refcount(child), 1);
        t.equal(sb.refcount(parent), 1);
        await sb.removeContainer('c1');
        t.equal(mountSnapshot(), before, 'released child first: nothing left mounted');
        t.equal(treeSnapshot(root), '', 'and no directory left');
      },
    );
  }

  t.test('a later request mounting a parent over a held storage is refused, nothing changed', async (t) => {
    const root = scratchDir(t);
    const parent = join(root, 'shared');
    const child = join(parent, 'c1', 'rootfs');
    const sb = new Sandbox({ allowedRoots: [root] });
    await sb.addStorages([tmpfs(child)], { containerId: 'c1' });
    writeFileSync(join(child, 'f'), 'held');
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const first = join(root, 'first');
    const err = await rejection(sb.addStorages([tmpfs(first), tmpfs(parent)], { containerId: 'c2' }));
    t.ok(err instanceof StorageError);
    t.match(err, { code: 'ERR_MOUNT_POINT_COVERS_STORAGE', value: parent, covered: child });
    t.match(err.message, new RegExp(`${parent}.*hide ${child}`), 'naming both');
    t.equal(mountSnapshot(), before, 'mountinfo as before: not even the first storage was mounted');
    t.equal(treeSnapshot(root), tree, 'no directory made');
    t.notOk(existsSync(first));
    t.equal(readFileSync(join(child, 'f'), 'utf8'), 'held', 'the held storage still shows');
    t.same([...sb.storages().keys()], [child], 'the table as before');
    // The same request once the held storage is gone: no refusal.
    await sb.removeContainer('c1');
    t.same(await sb.addStorages([tmpfs(parent)], { containerId: 'c2' }), [parent]);
    await sb.destroy();
    t.equal(treeSnapshot(root), '');
  });

  t.test('a mount point already held only gains a reference, even with storages beneath it', async (t) => {
    const root = scratchDir(t);
    const parent = join(root, 'p');
    const child = join(parent, 'c');
    const before = mountSnapshot();
    const sb = new Sandbox({ allowedRoots: [root] });
    await sb.addStorages([tmpfs(child), tmpfs(parent)], { containerId: 'c1' });
    t.same(await sb.addStorages([tmpfs(parent), tmpfs(child)], { containerId: 'c2' }), [parent, child]);
    t.equal(sb.refcount(parent), 2);
    t.equal(sb.refcount(child), 2);
    t.ok(onTopOf(child, parent));
    await sb.removeContainer('c1');
    await sb.removeContainer('c2');
    t.equal(mountSnapshot(), before);
    t.equal(treeSnapshot(root), '');
  });

  t.test('a mount a held storage made besides its mount point is covered too', async (t) => {
    const root = scratchDir(t);
    const registry = defaultRegistry();
    // A driver that mounts a second tmpfs outside its mount point, as erofs.multi-layer does.
    registry.register('two-mounts', {
      async create(storage, ctx) {
        await ctx.mountAtMountPoint('tmpfs', 'tmpfs', ['size=64k']);
        const aux = join(root, 'aux', 'inner');
        await ctx.makeDirectory(aux);
        await ctx.mount('tmpfs', aux, 'tmpfs', ['size=64k']);
        return storage.mountPoint;
      },
    });
    const sb = new Sandbox({ allowedRoots: [root], registry });
    const before = mountSnapshot();
    await sb.addStorages([{ ...tmpfs(join(root, 'e')), driver: 'two-mounts' }]);
    const held = mountSnapshot();
    const err = await rejection(sb.addStorages([tmpfs(join(root, 'aux'))]));
    t.match(err, { code: 'ERR_MOUNT_POINT_COVERS_STORAGE', covered: join(root, 'aux', 'inner') });
    t.equal(mountSnapshot(), held);
    await sb.destroy();
    t.equal(mountSnapshot(), before);
    t.equal(treeSnapshot(root), '');
  });
});
