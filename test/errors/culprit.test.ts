// Errors name the culprit, and a guest pre-mount is accepted only when it is what was asked.
import t from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Sandbox, mountSync, newMountApiSupport, umountSync } from '../../lib/index';
import { hasSysAdmin, knownFilesystems } from '../../lib/errors';
import { cannotMount, mountSnapshot, readMountinfo, scratchDir } from '../helpers/mountinfo';
import { treeSnapshot } from '../helpers/tree';

const apis: Array<'new' | 'legacy'> = newMountApiSupport().complete ? ['new', 'legacy'] : ['legacy'];
const known = knownFilesystems()!;

t.test('capability and filesystem readers', async (t) => {
  t.equal(
    hasSysAdmin(() => 'Name:\tx\nCapEff:\t000001ffffffffff\n'),
    true,
  );
  t.equal(
    hasSysAdmin(() => 'Name:\tx\nCapEff:\t0000000000000000\n'),
    false,
  );
  t.equal(
    hasSysAdmin(() => 'CapEff:\t0000000000200000\n'),
    true,
    'bit 21 alone',
  );
  t.equal(
    hasSysAdmin(() => {
      throw new Error('no proc');
    }),
    true,
    'unknown is not reported as missing',
  );
  t.same([...knownFilesystems(() => 'nodev\ttmpfs\n\text4\n')!], ['tmpfs', 'ext4']);
  t.equal(
    knownFilesystems(() => {
      throw new Error('no proc');
    }),
    undefined,
  );
  t.ok(known.has('tmpfs'));
});

t.test('ENODEV from an unknown filesystem type names the type, on both APIs', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  const before = mountSnapshot();
  for (const api of apis) {
    t.throws(() => mountSync('tmpfs', dir, 'nosuchfs', [], { mountApi: api }), {
      code: 'ENODEV',
      errno: -19,
      syscall: api === 'new' ? 'fsopen' : 'mount',
      path: 'tmpfs',
      dest: dir,
      fstype: 'nosuchfs',
      message: /filesystem type 'nosuchfs' is not known to this kernel/,
    });
  }
  t.equal(mountSnapshot(), before);
});

t.test(
  'a pre-mount is accepted only with the tag and the filesystem type asked for',
  { skip: cannotMount },
  async (t) => {
    const root = scratchDir(t);
    const shared = join(root, 'shared');
    mkdirSync(shared);
    mountSync('kataShared', shared, 'tmpfs', ['size=1m']);
    t.teardown(() => umountSync(shared));
    const at = (): number => readMountinfo().filter((m) => m.mountPoint === shared).length;
    const sb = new Sandbox({ allowedRoots: [root] });

    // The right tag and type: accepted as is, nothing mounted on top, never unmounted by us.
    await sb.addStorages([{ driver: 'virtio-fs', source: 'kataShared', fstype: 'tmpfs', mountPoint: shared }], {
      containerId: 'a',
    });
    t.equal(at(), 1, 'accepted: nothing stacked on the pre-mount');
    await sb.removeContainer('a');
    t.equal(at(), 1, 'and not unmounted');

    // The tag matches but the type does not: not the share that was asked for.
    const before = mountSnapshot();
    for (const [driver, fstype] of [
      ['virtio-fs', 'virtiofs'],
      ['9p', '9p'],
    ] as const) {
      const e = (await sb
        .addStorages([{ driver, source: 'kataShared', fstype, mountPoint: shared }], { containerId: 'b' })
        .catch((x: unknown) => x)) as Error & {
        code: string;
      };
      t.type(e, Error, `${driver}: a tmpfs carrying the tag is not accepted as ${fstype}`);
      if (!known.has(fstype)) {
        t.match(
          e,
          { code: 'ENODEV', fstype, message: new RegExp(`filesystem type '${fstype}' is not known to this kernel`) },
          `${driver}: the error names the missing type, not the tag`,
        );
      }
      t.equal(mountSnapshot(), before, `${driver}: nothing mounted`);
    }
    await sb.destroy();
  },
);

t.test('EPERM without CAP_SYS_ADMIN says mounting needs root', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  const script = `
    const { mountSync, umountSync } = require(${JSON.stringify(join(__dirname, '..', '..', 'dist', 'index.js'))});
    const out = [];
    for (const api of ${JSON.stringify(apis)}) {
      try { mountSync('tmpfs', ${JSON.stringify(dir)}, 'tmpfs', ['size=1m'], { mountApi: api }); out.push({ api, ok: true }); }
      catch (e) { out.push({ api, code: e.code, syscall: e.syscall, message: e.message, dest: e.dest }); }
    }
    try { umountSync('/'); } catch (e) { out.push({ api: 'umount', code: e.code, message: e.message }); }
    process.stdout.write(JSON.stringify(out));`;
  // Root without CAP_SYS_ADMIN: the capability, not the uid, is what mounting needs.
  const r = spawnSync(
    'setpriv',
    ['--inh-caps=-sys_admin', '--bounding-set=-sys_admin', process.execPath, '-e', script],
    { encoding: 'utf8' },
  );
  t.equal(r.status, 0, r.stderr);
  const results = JSON.parse(r.stdout) as Array<Record<string, string>>;
  for (const x of results) {
    t.match(x.code, /^(EPERM|EACCES)$/, `${x.api}: refused`);
    t.match(x.message, /mounting needs root \(CAP_SYS_ADMIN\)/, `${x.api}: says why`);
  }
  t.equal(results.length, apis.length + 1);
  t.equal(treeSnapshot(dir), '', 'nothing created');
});
