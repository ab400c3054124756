// What JavaScript callers can throw at the API: wrong types, NUL bytes, huge inputs, polluted
// prototypes. Each gets a TypeError or StorageError with a code, never a crash, and changes nothing.
import t from 'tap';
import { openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import {
  mount,
  mountSync,
  umount,
  umountSync,
  isMountPoint,
  parseMountOptions,
  Sandbox,
  type StorageInput,
} from '../../lib/index';
import { cannotMount, mountAt, mountSnapshot, scratchDir } from '../helpers/mountinfo';

const notStrings: unknown[] = [undefined, null, 1, 1n, true, {}, [], Symbol('s'), () => 'x', new String('tmpfs')];

t.test('parseMountOptions refuses what is not a string array', async (t) => {
  for (const v of [undefined, null, 'ro', 1, {}, { length: 1, 0: 'ro' }, new Set(['ro'])]) {
    t.throws(
      () => parseMountOptions(v as unknown as string[]),
      { code: 'ERR_INVALID_ARG_TYPE' },
      `options = ${String(v)}`,
    );
  }
  for (const v of notStrings) {
    t.throws(() => parseMountOptions([v as string]), { code: 'ERR_INVALID_ARG_TYPE' }, `element ${typeof v}`);
  }
  const sparse = new Array<string>(3);
  t.throws(() => parseMountOptions(sparse), { code: 'ERR_INVALID_ARG_TYPE' }, 'holes are undefined');
});

t.test('huge inputs are refused or handled, never crash', async (t) => {
  t.throws(() => parseMountOptions(['x'.repeat(1 << 20)]), { code: 'ERR_MOUNT_OPTIONS_TOO_LONG' });
  const many = new Array<string>(200000).fill('ro');
  t.equal(parseMountOptions(many).flags, 1, '200k flag words parse');
  t.throws(() => parseMountOptions(new Array<string>(5000).fill('x')), { code: 'ERR_MOUNT_OPTIONS_TOO_LONG' });
  t.throws(() => parseMountOptions([`ro${'\0'.repeat(1000)}`]), { code: 'ERR_INVALID_MOUNT_OPTION' });
});

t.test('mount/umount refuse bad arguments before touching anything', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  const before = mountSnapshot();
  for (const v of notStrings) {
    t.throws(() => mountSync(v as string, dir, 'tmpfs'), { code: 'ERR_INVALID_ARG_TYPE' });
    t.throws(() => mountSync('tmpfs', v as string, 'tmpfs'), { code: 'ERR_INVALID_ARG_TYPE' });
    t.throws(() => mountSync('tmpfs', dir, v as string), { code: 'ERR_INVALID_ARG_TYPE' });
    await t.rejects(mount('tmpfs', v as string, 'tmpfs'), { code: 'ERR_INVALID_ARG_TYPE' });
    t.throws(() => umountSync(v as string), { code: 'ERR_INVALID_ARG_TYPE' });
    await t.rejects(umount(v as string), { code: 'ERR_INVALID_ARG_TYPE' });
    t.throws(() => isMountPoint(v as string), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  t.throws(() => mountSync('tmpfs', dir, 'tmp\0fs'), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => mountSync('tmpfs', dir, 'tmpfs', ['x'.repeat(1 << 20)]), { code: 'ERR_MOUNT_OPTIONS_TOO_LONG' });
  await t.rejects(mount('tmpfs', dir, 'tmpfs', 'size=1m' as unknown as string[]), { code: 'ERR_INVALID_ARG_TYPE' });
  await t.rejects(umount(dir, { busyTimeoutMs: Infinity }), { code: 'ERR_INVALID_ARG_VALUE' });
  await t.rejects(umount(dir, { busyTimeoutMs: '5' as unknown as number }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.equal(mountSnapshot(), before, 'mountinfo unchanged');
});

t.test('a polluted Object.prototype does not turn on detach or force', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  mountSync('tmpfs', dir, 'tmpfs', ['size=16k']);
  const fd = openSync(join(dir, 'held'), 'w');
  const proto = Object.prototype as Record<string, unknown>;
  proto.detach = true;
  proto.force = true;
  try {
    t.throws(() => umountSync(dir, {}), { code: 'EBUSY' }, 'still a plain umount: busy');
    t.ok(mountAt(dir), 'still mounted');
  } finally {
    delete proto.detach;
    delete proto.force;
    closeSync(fd);
  }
  umountSync(dir);
  t.equal(mountAt(dir), undefined);
});

t.test(
  'Sandbox.addStorages refuses wrong types, NUL, huge input and inherited fields',
  { skip: cannotMount },
  async (t) => {
    const root = scratchDir(t);
    const sandbox = new Sandbox({ allowedRoots: [root] });
    const good = { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'v') };
    const before = mountSnapshot();
    const cases: [string, unknown, string][] = [
      ['not an array', good, 'ERR_INVALID_ARG_TYPE'],
      ['a number for a storage', [42], 'ERR_INVALID_STORAGE'],
      ['a number for driver', [{ ...good, driver: 7 }], 'ERR_INVALID_STORAGE'],
      ['undefined source', [{ ...good, source: undefined }], 'ERR_INVALID_STORAGE'],
      ['NUL in the mount point', [{ ...good, mountPoint: `${root}/v\0x` }], 'ERR_INVALID_STORAGE'],
      ['NUL in an option', [{ ...good, options: ['size=1m\0'] }], 'ERR_INVALID_STORAGE'],
      ['a 1 MB option string', [{ ...good, options: ['x'.repeat(1 << 20)] }], 'ERR_MOUNT_OPTIONS_TOO_LONG'],
      ['options not an array', [{ ...good, options: 'size=1m' }], 'ERR_INVALID_STORAGE'],
      ['shared not a boolean', [{ ...good, shared: 'yes' }], 'ERR_INVALID_STORAGE'],
      [
        'a valid storage then 10,000 broken ones',
        [good, ...new Array(10000).fill({ ...good, mountPoint: 'relative' })],
        'ERR_INVALID_STORAGE',
      ],
    ];
    for (const [name, input, code] of cases) {
      await t.rejects(sandbox.addStorages(input as unknown as StorageInput[], { containerId: 'c' }), { code }, name);
    }
    await t.rejects(sandbox.addStorages([good], { containerId: 5 as unknown as string }), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
    await t.rejects(sandbox.removeContainer(undefined as unknown as string), { code: 'ERR_INVALID_ARG_TYPE' });

    // Fields inherited from a polluted prototype are not part of a request.
    const proto = Object.prototype as Record<string, unknown>;
    proto.mountPoint = '/etc';
    proto.driver = 'ephemeral';
    try {
      await t.rejects(
        sandbox.addStorages([{ source: 'tmpfs', fstype: 'tmpfs' } as unknown as StorageInput], { containerId: 'c' }),
        { code: 'ERR_INVALID_STORAGE' },
      );
    } finally {
      delete proto.mountPoint;
      delete proto.driver;
    }
    t.equal(mountSnapshot(), before, 'nothing mounted');
    t.same(sandbox.storages().size, 0, 'no entry left behind');
  },
);
