import t from 'tap';
import { closeSync, existsSync, mkdirSync, openSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { join } from 'node:path';
import {
  Sandbox,
  StorageHandlerRegistry,
  defaultRegistry,
  effectiveMountApi,
  normalizeStorage,
  type Storage,
} from '../../lib/index';
import { BUILTIN_DRIVERS } from '../../lib/drivers';
import { cannotMount, mountAt, mountSnapshot, mountsUnder, scratchDir } from '../helpers/mountinfo';
import { treeSnapshot } from '../helpers/tree';

const tmpfs = (mountPoint: string, options: string[] = ['size=1m']): Storage => ({
  driver: 'ephemeral',
  source: 'tmpfs',
  fstype: 'tmpfs',
  options,
  mountPoint,
});
const local = (mountPoint: string, options: string[] = []): Storage => ({
  driver: 'local',
  source: 'local',
  fstype: 'local',
  options,
  mountPoint,
});

t.test('normalizeStorage accepts our form and Kata protobuf JSON', async (t) => {
  const proto = normalizeStorage({
    driver: 'ephemeral',
    driver_options: ['a=b'],
    source: 'tmpfs',
    fstype: 'tmpfs',
    options: ['size=1m'],
    mount_point: '/run/kata-containers/x',
    fs_group: { group_id: 1234, group_change_policy: 1 },
    shared: true,
  });
  t.same(proto, {
    driver: 'ephemeral',
    driverOptions: ['a=b'],
    source: 'tmpfs',
    fstype: 'tmpfs',
    options: ['size=1m'],
    mountPoint: '/run/kata-containers/x',
    fsGroup: { groupId: 1234, groupChangePolicy: 'OnRootMismatch' },
    shared: true,
  });
  t.same(
    normalizeStorage({
      driver: 'local',
      source: 'local',
      fstype: 'local',
      mountPoint: '/m',
      fsGroup: { groupId: '7', groupChangePolicy: 'Always' },
    }).fsGroup,
    {
      groupId: 7,
      groupChangePolicy: 'Always',
    },
  );
  t.same(
    normalizeStorage({
      driver: 'x',
      source: 's',
      fstype: 'f',
      mount_point: '/m',
      fs_group: { group_id: 0, group_change_policy: 0 },
    }).fsGroup,
    {
      groupId: 0,
      groupChangePolicy: 'Always',
    },
  );
  for (const bad of [
    null,
    [],
    'x',
    { driver: 1 },
    { driver: 'x', options: 'ro' },
    { driver: 'x', options: [1] },
    { driver: 'x', fsGroup: 5 },
    { driver: 'x', fsGroup: { groupId: -1 } },
    { driver: 'x', fsGroup: { groupId: 1, groupChangePolicy: 2 } },
    { driver: 'x', shared: 'yes' },
  ]) {
    t.throws(() => normalizeStorage(bad), { code: 'ERR_INVALID_STORAGE' }, JSON.stringify(bad));
  }
});

t.test('a polluted Object.prototype does not leak into requests or options', async (t) => {
  const proto = Object.prototype as Record<string, unknown>;
  proto.shared = true;
  proto.fsGroup = { groupId: 0 };
  proto.allowedRoots = ['/'];
  try {
    const s = normalizeStorage({
      driver: 'local',
      source: 'local',
      fstype: 'local',
      mountPoint: '/run/kata-containers/x',
    });
    t.notOk(Object.hasOwn(s, 'shared'));
    t.notOk(Object.hasOwn(s, 'fsGroup'));
    t.same(new Sandbox({}).allowedRoots, ['/run/kata-containers']);
  } finally {
    delete proto.shared;
    delete proto.fsGroup;
    delete proto.allowedRoots;
  }
});

t.test('registry: every built-in driver, custom drivers, duplicates refused', async (t) => {
  const r = defaultRegistry();
  // Every driver of Kata's agent (storage/mod.rs) but image_guest_pull, plus 9p: a handler for
  // each declared name and no other (test/docs/driver-names.test.ts holds the names to Kata's
  // strings).
  t.same(r.drivers().sort(), [...BUILTIN_DRIVERS].sort());
  t.not(defaultRegistry(), r, 'a fresh registry each time');
  t.throws(() => r.register('local', { create: async () => '' }), {
    code: 'ERR_STORAGE_DRIVER_EXISTS',
    value: 'local',
  });
  t.throws(() => r.register('', { create: async () => '' }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => r.register('x', {} as never), { code: 'ERR_INVALID_ARG_TYPE' });
  const custom = { create: async () => '/p' };
  r.register('custom', custom);
  t.equal(r.get('custom'), custom);
  t.ok(r.drivers().includes('custom'));
  t.notOk(new StorageHandlerRegistry().has('local'), 'an empty registry is empty');
});

t.test('Sandbox options are checked', async (t) => {
  t.throws(() => new Sandbox({ allowedRoots: [] }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => new Sandbox({ allowedRoots: ['relative'] }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => new Sandbox({ allowedRoots: ['/a/../b'] }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => new Sandbox({ hotplugTimeoutMs: -1 }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => new Sandbox(5 as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.same(new Sandbox().allowedRoots, ['/run/kata-containers']);
});

t.test('storages for real', { skip: cannotMount }, async (t) => {
  t.test('two containers share ephemeral + local; the last one out unmounts and removes', async (t) => {
    const root = scratchDir(t);
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const sb = new Sandbox({ allowedRoots: [root] });
    const shm = join(root, 'sandbox', 'shm');
    const empty = join(root, 'c', 'empty');
    const req = [tmpfs(shm, ['size=1m', 'mode=1770', 'noexec']), local(empty, ['mode=0750'])];
    t.same(await sb.addStorages(req, { containerId: 'c1' }), [shm, empty]);
    t.same(await sb.addStorages(req, { containerId: 'c2' }), [shm, empty]);
    t.equal(mountsUnder(shm).length, 1, 'mounted once');
    const m = mountAt(shm)!;
    t.equal(m.fstype, 'tmpfs');
    t.ok(
      m.superOptions.includes('size=1024k') && m.superOptions.includes('mode=1770'),
      `options kept: ${m.superOptions}`,
    );
    t.ok(m.mountOptions.includes('noexec'));
    t.equal(statSync(empty).mode & 0o7777, 0o750, 'local mode= is octal');
    t.equal(sb.refcount(shm), 2);
    t.equal(sb.refcount(empty), 2);
    writeFileSync(join(empty, 'data'), 'written by a container');
    await sb.removeContainer('c1');
    t.equal(sb.refcount(shm), 1);
    t.ok(mountAt(shm), 'still mounted for c2');
    t.ok(existsSync(join(empty, 'data')), 'local kept for c2');
    await sb.removeContainer('c2');
    t.equal(sb.refcount(shm), 0);
    t.equal(sb.storages().size, 0);
    t.equal(mountSnapshot(), before, 'mountinfo as before');
    t.equal(treeSnapshot(root), tree, 'directories as before');
    await sb.removeContainer('c2');
    t.pass('removing an unknown container is a no-op');
  });

  t.test('rollback of [held, new, local, failing] leaves everything as before', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const held = join(root, 'held');
    await sb.addStorages([tmpfs(held)], { containerId: 'old' });
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    const failing = tmpfs(join(root, 'deep', 'failing'), ['size=bogus']);
    const err = await sb
      .addStorages([tmpfs(held), tmpfs(join(root, 'new', 'a')), local(join(root, 'new', 'b'), ['mode=700']), failing], {
        containerId: 'c',
      })
      .catch((e: Error) => e);
    const syscall = effectiveMountApi() === 'new' ? 'fsconfig' : 'mount'; // where size=bogus is refused
    t.match(err, { code: 'EINVAL', syscall, dest: failing.mountPoint }, 'the original error');
    t.notOk((err as { rollbackErrors?: unknown }).rollbackErrors, 'rollback itself succeeded');
    t.equal(mountSnapshot(), before, 'mountinfo exactly as before');
    t.equal(treeSnapshot(root), tree, 'directories exactly as before');
    t.equal(sb.refcount(held), 1, 'the earlier holder keeps its count');
    t.same([...sb.storages().keys()], [held]);
    await sb.removeContainer('c');
    t.equal(sb.refcount(held), 1, 'the failed request left the container nothing to release');
    await sb.removeContainer('old');
    t.equal(mountAt(held), undefined);
  });

  t.test('bad input: each refused with its code, nothing changed', async (t) => {
    const root = scratchDir(t);
    const outside = scratchDir(t);
    mkdirSync(join(root, 'real'));
    symlinkSync(outside, join(root, 'link'));
    writeFileSync(join(root, 'file'), '');
    const sb = new Sandbox({ allowedRoots: [root] });
    const ok = tmpfs(join(root, 'ok'));
    const cases: [string, Partial<Storage> | Record<string, unknown>, string][] = [
      ['relative', { mountPoint: 'run/x' }, 'ERR_INVALID_STORAGE'],
      ['dot-dot', { mountPoint: `${root}/real/../x` }, 'ERR_INVALID_STORAGE'],
      ['double slash', { mountPoint: `${root}//x` }, 'ERR_INVALID_STORAGE'],
      // One trailing '/' is the same directory (test/storage/request-forms.test.ts); these are not.
      ['trailing double slash', { mountPoint: `${root}/x//` }, 'ERR_INVALID_STORAGE'],
      ['the root itself, with a trailing slash', { mountPoint: `${root}/` }, 'ERR_INVALID_STORAGE'],
      ['outside roots', { mountPoint: join(outside, 'x') }, 'ERR_INVALID_STORAGE'],
      ['the root itself', { mountPoint: root }, 'ERR_INVALID_STORAGE'],
      ['prefix of a root', { mountPoint: `${root}x/y` }, 'ERR_INVALID_STORAGE'],
      ['through a symlink', { mountPoint: join(root, 'link', 'x') }, 'ERR_INVALID_STORAGE'],
      ['symlink leaf', { mountPoint: join(root, 'link') }, 'ERR_INVALID_STORAGE'],
      ['through a file', { mountPoint: join(root, 'file', 'x') }, 'ERR_INVALID_STORAGE'],
      ['NUL in mount point', { mountPoint: `${root}/x\0y` }, 'ERR_INVALID_STORAGE'],
      ['NUL in source', { source: 'tmp\0fs' }, 'ERR_INVALID_STORAGE'],
      ['NUL in option', { options: ['size=1m\0'] }, 'ERR_INVALID_STORAGE'],
      ['empty mount point', { mountPoint: '' }, 'ERR_INVALID_STORAGE'],
      ['empty source', { source: '' }, 'ERR_INVALID_STORAGE'],
      ['empty fstype', { fstype: '' }, 'ERR_INVALID_STORAGE'],
      ['empty driver', { driver: '' }, 'ERR_INVALID_STORAGE'],
      ['unknown driver', { driver: 'floppy' }, 'ERR_UNKNOWN_STORAGE_DRIVER'],
      ['loop option', { options: ['loop'] }, 'ERR_INVALID_MOUNT_OPTION'],
      ['options too long', { options: ['x'.repeat(70000)] }, 'ERR_MOUNT_OPTIONS_TOO_LONG'],
      ['bad fsgid', { options: ['fsgid=abc'] }, 'ERR_INVALID_MOUNT_OPTION'],
      [
        'bad mode',
        { driver: 'local', source: 'local', fstype: 'local', options: ['mode=0999'] },
        'ERR_INVALID_MOUNT_OPTION',
      ],
      [
        'unknown local driver option',
        { driver: 'local', source: 'local', fstype: 'local', driverOptions: ['keep'] },
        'ERR_INVALID_MOUNT_OPTION',
      ],
      [
        'pagesize=0',
        { fstype: 'hugetlbfs', source: 'nodev', options: ['pagesize=0,size=2097152'] },
        'ERR_INVALID_MOUNT_OPTION',
      ],
      ['no size', { fstype: 'hugetlbfs', source: 'nodev', options: ['pagesize=2097152'] }, 'ERR_INVALID_MOUNT_OPTION'],
      [
        'size not pages',
        { fstype: 'hugetlbfs', source: 'nodev', options: ['pagesize=2097152,size=1000'] },
        'ERR_INVALID_MOUNT_OPTION',
      ],
      [
        'overlay upper outside',
        { driver: 'overlayfs', source: 'overlay', fstype: 'overlay', options: [`upperdir=${outside}/u`] },
        'ERR_INVALID_STORAGE',
      ],
      [
        'rw overlay, bad container',
        { driver: 'overlayfs', source: 'overlay', fstype: 'overlay', options: ['io.katacontainers.fs-opt.overlay-rw'] },
        'ERR_INVALID_STORAGE',
      ],
      ['bad fsGroup', { fsGroup: { groupId: 1.5 } } as never, 'ERR_INVALID_STORAGE'],
    ];
    const before = mountSnapshot();
    const tree = treeSnapshot(root);
    for (const [name, patch, code] of cases) {
      const bad = { ...tmpfs(join(root, 'bad', name.replace(/\W/g, '_'))), ...patch };
      // The good storage comes first: validation of the whole request happens before it is mounted.
      const containerId = name.startsWith('rw overlay') ? '../escape' : 'c';
      const err = await sb
        .addStorages([ok, bad], { containerId })
        .catch((e: Error & { code?: string; value?: unknown }) => e);
      t.equal((err as { code?: string }).code, code, name);
      t.ok('value' in (err as object), `${name}: the offending value is attached`);
    }
    await t.rejects(sb.addStorages('x' as never), { code: 'ERR_INVALID_ARG_TYPE' });
    await t.rejects(sb.addStorages([ok], { containerId: 5 as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    t.equal(mountSnapshot(), before, 'nothing mounted');
    t.equal(treeSnapshot(root), tree, 'no directory created');
    t.equal(sb.storages().size, 0, 'no entry left behind');
  });

  t.test('20 concurrent adds of one volume mount it once with count 20', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const p = join(root, 'vol');
    const mountEvents: unknown[] = [];
    const onMount = (m: unknown): void => void mountEvents.push(m);
    subscribe('kata-storage:mount', onMount);
    t.teardown(() => unsubscribe('kata-storage:mount', onMount));
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => sb.addStorages([tmpfs(p)], { containerId: `c${i}` })),
    );
    t.ok(results.every((r) => r[0] === p));
    t.equal(mountsUnder(p).length, 1, 'one mount');
    t.equal(sb.refcount(p), 20);
    t.equal(mountEvents.filter((m) => (m as { mountPoint: string }).mountPoint === p).length, 1, 'one mount event');
    await Promise.all(Array.from({ length: 19 }, (_, i) => sb.removeContainer(`c${i}`)));
    t.equal(sb.refcount(p), 1);
    t.ok(mountAt(p));
    await sb.removeContainer('c19');
    t.equal(mountAt(p), undefined);
  });

  t.test('an add racing a remove keeps the storage mounted', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const p = join(root, 'vol');
    for (let round = 0; round < 5; round++) {
      await sb.addStorages([tmpfs(p)], { containerId: 'a' });
      const [, added] = await Promise.all([sb.removeContainer('a'), sb.addStorages([tmpfs(p)], { containerId: 'b' })]);
      t.same(added, [p]);
      t.ok(mountAt(p), `round ${round}: still mounted`);
      t.equal(sb.refcount(p), 1);
      await sb.removeContainer('b');
      t.equal(mountAt(p), undefined);
    }
  });

  t.test('EBUSY on cleanup keeps the entry; destroy() cleans it once the file is closed', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const p = join(root, 'busy');
    await sb.addStorages([tmpfs(p)], { containerId: 'c' });
    const fd = openSync(join(p, 'open-file'), 'w');
    await t.rejects(sb.removeContainer('c'), { code: 'EBUSY', syscall: 'umount2', path: p });
    t.ok(mountAt(p), 'still mounted');
    t.same(
      sb.storages().get(p),
      { refcount: 0, driver: 'ephemeral', shared: false, cleanupPending: true },
      'kept, marked',
    );
    t.ok(existsSync(p));
    await sb.removeContainer('other');
    t.equal(sb.storages().get(p)?.cleanupPending, true, 'a later release retries, still busy: still marked');
    closeSync(fd);
    await sb.destroy();
    t.equal(mountAt(p), undefined, 'unmounted by destroy');
    t.notOk(existsSync(p), 'and removed');
    t.equal(sb.storages().size, 0);
  });
});
