// The OCI spec the runtime planner takes and gives back: everything it does not rewrite kept
// (Kata's removeIgnoredOCIMount, replaceOCIMountSource), a bad spec refused with a path into it,
// and any spec either planned with every destination kept or refused.
import t from 'tap';
import { planContainer, type OciSpec, type RuntimeSettings } from '../../lib/runtime/index';
import { SHARED } from '../helpers/plan';

t.test('removeIgnoredOCIMount and replaceOCIMountSource leave everything else alone', async (t) => {
  const input: OciSpec = {
    ociVersion: '1.0.2',
    process: { args: ['sh'] },
    root: { path: '/b/rootfs', readonly: true },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/layer', type: 'overlay', source: 'overlay', options: ['io.katacontainers.fs-opt.is-layer'] },
      {
        destination: '/data',
        type: 'bind',
        source: '/srv/data',
        options: ['rbind', 'ro'],
        uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }],
      },
    ],
    annotations: { a: 'b' },
  };
  const before = structuredClone(input);
  const p = planContainer('c', input, { sandboxId: 's' });
  t.same(input, before, 'the input spec is not modified');
  t.same(p.spec.process, input.process);
  t.same(p.spec.annotations, input.annotations);
  t.same(p.spec.root, { path: `${SHARED}/c/rootfs`, readonly: true });
  t.same(
    p.spec.mounts!.map((m) => m.destination),
    ['/proc', '/data'],
    'the layer is removed',
  );
  t.same(
    p.spec.mounts![1]!.uidMappings,
    [{ containerID: 0, hostID: 1000, size: 1 }],
    'fields the planner does not know are kept',
  );
});

t.test('bad specs: a typed error with a path into the spec', async (t) => {
  const root = { path: '/r' };
  const rows: [string, unknown, string, string][] = [
    ['not an object', 'config.json', 'ERR_INVALID_SPEC', 'spec'],
    ['mounts not an array', { root, mounts: {} }, 'ERR_INVALID_SPEC', 'mounts'],
    ['a mount not an object', { root, mounts: [null] }, 'ERR_INVALID_SPEC', 'mounts[0]'],
    [
      'no destination',
      {
        root,
        mounts: [
          { destination: '/ok', type: 'proc', source: 'proc' },
          { type: 'tmpfs', source: 'tmpfs' },
        ],
      },
      'ERR_INVALID_SPEC',
      'mounts[1].destination',
    ],
    [
      'destination with ..',
      { root, mounts: [{ destination: '/a/../../etc', type: 'tmpfs', source: 't' }] },
      'ERR_INVALID_SPEC',
      'mounts[0].destination',
    ],
    [
      'destination with NUL',
      { root, mounts: [{ destination: '/a\0', type: 'tmpfs', source: 't' }] },
      'ERR_INVALID_SPEC',
      'mounts[0].destination',
    ],
    [
      'unknown type',
      { root, mounts: [{ destination: '/a', type: 'tmfps', source: 't' }] },
      'ERR_INVALID_SPEC',
      'mounts[0].type',
    ],
    [
      'no type, not a bind',
      { root, mounts: [{ destination: '/a', source: '/x' }] },
      'ERR_INVALID_SPEC',
      'mounts[0].type',
    ],
    [
      'options not strings',
      { root, mounts: [{ destination: '/a', type: 'tmpfs', source: 't', options: [1] }] },
      'ERR_INVALID_SPEC',
      'mounts[0].options',
    ],
    [
      'relative bind source',
      { root, mounts: [{ destination: '/a', type: 'bind', source: 'data', options: ['rbind'] }] },
      'ERR_INVALID_SPEC',
      'mounts[0].source',
    ],
    [
      'bind without source',
      { root, mounts: [{ destination: '/a', type: 'bind', options: ['rbind'] }] },
      'ERR_INVALID_SPEC',
      'mounts[0].source',
    ],
    [
      'block volume, no device (stat says block)',
      {
        root,
        mounts: [
          { destination: '/ok', type: 'proc', source: 'proc' },
          { destination: '/a', type: 'bind', source: '/dev/sdz', options: ['rbind'] },
        ],
      },
      'ERR_BLOCK_DEVICE_NOT_ATTACHED',
      'mounts[1].source',
    ],
    [
      'block file, no device',
      {
        root,
        mounts: [
          {
            destination: '/a',
            type: 'bind',
            source: '/img',
            options: ['bind', 'io.katacontainers.fs-opt.block_device=file'],
          },
        ],
      },
      'ERR_BLOCK_DEVICE_NOT_ATTACHED',
      'mounts[0].source',
    ],
    ['no root', { mounts: [] }, 'ERR_INVALID_SPEC', 'root'],
    ['relative root, no bundle', { root: { path: 'rootfs' } }, 'ERR_INVALID_SPEC', 'root.path'],
  ];
  const settings: RuntimeSettings = { volumes: { '/dev/sdz': { kind: 'block' } } };
  for (const [name, input, code, path] of rows) {
    const before = structuredClone(input);
    t.throws(() => planContainer('c', input, settings), { code, path, name: 'StorageError' }, name);
    t.same(input, before, `${name}: the input is untouched`);
  }
  t.throws(() => planContainer('', { root }), { code: 'ERR_INVALID_SPEC', path: 'containerId' });
  t.throws(() => planContainer('../x', { root }), { code: 'ERR_INVALID_SPEC', path: 'containerId' });
  const e = (() => {
    try {
      planContainer('c', {
        root,
        mounts: [
          { destination: '/a', type: 'tmpfs', source: 't' },
          { destination: '/a', type: 'weird', source: 't' },
        ],
      });
    } catch (err) {
      return err as Error & { value: unknown };
    }
    return undefined;
  })();
  t.match(e?.message, /^mounts\[1\]\.type: is not a filesystem/);
  t.equal(e?.value, 'weird');
});

t.test('any spec: a plan that keeps every destination, or a refusal whose path is in the input', async (t) => {
  const fc = (await import('fast-check')).default;
  const word = fc.constantFrom(
    'a',
    'b',
    'data',
    'kubernetes.io~secret',
    'kubernetes.io~empty-dir',
    'dev',
    'sys',
    '..',
    '.',
    '',
  );
  const path = fc
    .array(word, { minLength: 0, maxLength: 4 })
    .chain((parts) => fc.constantFrom(`/${parts.join('/')}`, parts.join('/')));
  const mount = fc.record(
    {
      destination: fc.oneof(path, fc.constant(undefined), fc.constant(7)),
      type: fc.constantFrom(undefined, 'bind', 'tmpfs', 'proc', 'ephemeral', 'local', 'ext4', 'bogus'),
      source: fc.oneof(path, fc.constantFrom('/dev/sdb', '/dev/shm', 'tmpfs', undefined)),
      options: fc.subarray([
        'rbind',
        'bind',
        'ro',
        'rw',
        'rprivate',
        'io.katacontainers.fs-opt.is-layer',
        'io.katacontainers.fs-opt.block_device=file',
      ]),
    },
    { requiredKeys: [] },
  );
  const settings: RuntimeSettings = {
    bundle: '/b',
    shmSize: 4096,
    blockDeviceDriver: 'virtio-blk',
    blockDevices: { '/dev/sdb': { pciPath: '02', fstype: 'ext4' } },
    volumes: { '/a/kubernetes.io~empty-dir/data': { fstype: 'tmpfs' } },
  };
  let planned = 0;
  let refused = 0;
  fc.assert(
    fc.property(
      fc.array(mount, { maxLength: 6 }),
      fc.constantFrom<RuntimeSettings['sharedFs']>('virtio-fs', 'virtio-9p', 'none'),
      (mounts, sharedFs) => {
        const input = { root: { path: sharedFs === 'none' ? '/dev/sdb' : 'rootfs' }, mounts };
        const before = structuredClone(input);
        const s = { ...settings, sharedFs };
        let plan;
        try {
          plan = planContainer('c', input, s);
        } catch (e) {
          const err = e as { code: string; path: string; name: string };
          refused++;
          if (
            err.name !== 'StorageError' ||
            !['ERR_INVALID_SPEC', 'ERR_BLOCK_DEVICE_NOT_ATTACHED', 'ERR_INVALID_RUNTIME_SETTINGS'].includes(err.code)
          )
            throw e;
          // The path names a place in the input: `mounts[i]...`, `root...` or `linux...`.
          const m = /^mounts\[(\d+)\]/.exec(err.path);
          if (m !== null && Number(m[1]) >= mounts.length)
            throw new Error(`path ${err.path} is outside the input`, { cause: e });
          if (!/^(mounts|root|linux|blockDevices|volumes)/.test(err.path))
            throw new Error(`unexpected path ${err.path}`, { cause: e });
          return;
        }
        planned++;
        if (JSON.stringify(input) !== JSON.stringify(before)) throw new Error('the input was modified');
        const kept = plan.spec.mounts!.map((x) => x.destination);
        const layers = mounts.filter((x) => x.options?.includes('io.katacontainers.fs-opt.is-layer')).length;
        // Only image layers leave the spec (no source here is a socket or fifo to ignore).
        if (kept.length !== mounts.length - layers) throw new Error(`mounts were lost: ${JSON.stringify(kept)}`);
        for (const st of plan.storages) {
          if (!st.mountPoint.startsWith('/') || st.driver === '' || st.source === '' || st.fstype === '')
            throw new Error(`bad storage ${JSON.stringify(st)}`);
        }
        if (JSON.stringify(planContainer('c', before, s)) !== JSON.stringify(plan))
          throw new Error('not deterministic');
      },
    ),
    { numRuns: 400, seed: Number(process.env.KATA_PLAN_SEED ?? 42) },
  );
  t.ok(planned > 20 && refused > 20, `both outcomes exercised (${planned} planned, ${refused} refused)`);
});
