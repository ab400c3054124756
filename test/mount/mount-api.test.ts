import t from 'tap';
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import {
  MountFlags,
  effectiveMountApi,
  mount,
  mountSync,
  newMountApiSupport,
  parseMountOptions,
  umountSync,
  type MountApi,
} from '../../lib/index';
import { defaultMountApi } from '../../lib/mount';
import {
  cannotMount,
  mountAt,
  mountSnapshot,
  mountsUnder,
  readMountinfo,
  scratchDir,
  nestedMounts,
} from '../helpers/mountinfo';
import { escapeTree } from '../helpers/tree';

const support = newMountApiSupport();
const noNewApi = support.complete ? false : 'this kernel or seccomp profile refuses the new mount API';
const noOpenat2 = support.openat2 ? false : 'openat2 is not available';
// Tests that compare both APIs run each where it can.
const apis: Array<'new' | 'legacy'> = support.complete ? ['new', 'legacy'] : ['legacy'];

t.test('mountApi setting', async (t) => {
  t.equal(defaultMountApi({}), 'auto');
  t.equal(defaultMountApi({ KATA_STORAGE_MOUNT_API: '' }), 'auto');
  t.equal(defaultMountApi({ KATA_STORAGE_MOUNT_API: 'legacy' }), 'legacy');
  t.equal(defaultMountApi({ KATA_STORAGE_MOUNT_API: 'new' }), 'new');
  t.match(defaultMountApi({ KATA_STORAGE_MOUNT_API: 'newest' }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /KATA_STORAGE_MOUNT_API/,
  });
  t.equal(effectiveMountApi('legacy'), 'legacy');
  t.equal(effectiveMountApi('new'), 'new');
  t.equal(effectiveMountApi('auto'), support.complete ? 'new' : 'legacy');
  t.throws(() => effectiveMountApi('fast' as MountApi), { code: 'ERR_INVALID_ARG_VALUE' });
  t.equal(effectiveMountApi('new', ['remount', 'ro']), 'legacy', 'a remount is always mount(2)');
  const long = [`lowerdir=${'/l'.repeat(200)}`];
  t.equal(effectiveMountApi('auto', long), 'legacy', 'a value fsconfig cannot take goes to mount(2)');
  t.equal(effectiveMountApi('new', long), 'new', 'unless the new API is forced');
  if (support.complete)
    t.equal(effectiveMountApi('auto', ['rbind', 'rro', ...long]), 'new', 'rro on an rbind cannot take mount(2)');
  t.equal(effectiveMountApi('auto', ['rro', ...long]), 'legacy', 'rro on a new superblock can');
  t.throws(() => effectiveMountApi('auto', ['loop']), { code: 'ERR_INVALID_MOUNT_OPTION', value: 'loop' });
  for (const k of [
    'fsopen',
    'fsconfig',
    'fsmount',
    'move_mount',
    'open_tree',
    'mount_setattr',
    'openat2',
    'complete',
    'overlayLowerdirPlus',
  ] as const) {
    t.type(support[k], 'boolean', k);
  }
  t.equal(
    support.complete,
    support.fsopen &&
      support.fsconfig &&
      support.fsmount &&
      support.move_mount &&
      support.open_tree &&
      support.mount_setattr,
  );
});

t.test('KATA_STORAGE_MOUNT_API is the default for a whole process', async (t) => {
  const run = (value: string): { effective: string; mountError: string } =>
    JSON.parse(
      execFileSync(process.execPath, [...process.execArgv, join(__dirname, '..', 'fixtures', 'mount-api-env.ts')], {
        env: { ...process.env, KATA_STORAGE_MOUNT_API: value },
        encoding: 'utf8',
        timeout: 60000,
      }),
    ) as { effective: string; mountError: string };
  t.same(run('legacy'), { effective: 'legacy', mountError: 'ERR_INVALID_MOUNT_OPTION' });
  // A bad value does not break loading; every mount that relies on it is refused.
  t.same(run('fastest'), { effective: 'throws ERR_INVALID_ARG_VALUE', mountError: 'ERR_INVALID_ARG_VALUE' });
});

t.test('recursive option words', async (t) => {
  const p = parseMountOptions(['rbind', 'rro', 'rnosuid,rnodev', 'rnoexec', 'ro']);
  const all = MountFlags.RDONLY | MountFlags.NOSUID | MountFlags.NODEV | MountFlags.NOEXEC;
  t.equal(p.flags, MountFlags.BIND | MountFlags.REC | all, 'the mount itself has them too');
  t.equal(p.recursiveFlags, all);
  t.equal(p.data, '', 'they are not data');
  t.equal(parseMountOptions(['ro']).recursiveFlags, 0);
  // KEP-3857: CRI runtimes put rro where ro would be; read-only is the flag, not the word.
  t.equal(parseMountOptions(['rbind', 'rprivate', 'rro']).flags & MountFlags.RDONLY, MountFlags.RDONLY);
  t.equal(parseMountOptions(['rro', 'rw']).flags, MountFlags.RDONLY, 'a later rw does not undo rro (runc)');
});

t.test('bad settings are refused before anything happens', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  const before = mountSnapshot();
  t.throws(() => mountSync('tmpfs', dir, 'tmpfs', [], { mountApi: 'newer' as MountApi }), {
    code: 'ERR_INVALID_ARG_VALUE',
    value: 'newer',
  });
  await t.rejects(mount('tmpfs', dir, 'tmpfs', [], { mountApi: 1 as unknown as MountApi }), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
  t.throws(() => mountSync('tmpfs', dir, 'tmpfs', [], 'new' as unknown as object), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => mountSync('tmpfs', dir, 'tmpfs', [], { beneath: 'relative/root' }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => mountSync('tmpfs', dir, 'tmpfs', [], { beneath: `${dir}\0` }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => mountSync('tmpfs', '/etc', 'tmpfs', [], { beneath: dir }), {
    code: 'ERR_INVALID_ARG_VALUE',
    value: '/etc',
    message: /must be inside options\.beneath/,
  });
  t.throws(
    () => mountSync('tmpfs', `${dir}x`, 'tmpfs', [], { beneath: dir }),
    { code: 'ERR_INVALID_ARG_VALUE' },
    'a prefix is not a parent',
  );
  // mount(2) cannot reach the mounts below an rbind.
  t.throws(() => mountSync(dir, dir, '', ['rbind', 'rro'], { mountApi: 'legacy' }), {
    code: 'ERR_INVALID_MOUNT_OPTION',
    value: 'rro',
    message:
      /^mount option 'rro' is not supported by mount\(2\): only the new mount API \(mount_setattr with AT_RECURSIVE\) reaches the mounts below an rbind/,
  });
  await t.rejects(mount(dir, dir, '', ['rbind', 'rnodev', 'rro'], { mountApi: 'legacy' }), {
    code: 'ERR_INVALID_MOUNT_OPTION',
    value: 'rnodev',
  });
  // A remount always goes through mount(2), whatever was asked for.
  t.throws(() => mountSync(dir, dir, '', ['remount', 'rbind', 'rro'], { mountApi: 'new' }), {
    code: 'ERR_INVALID_MOUNT_OPTION',
  });
  const proto = Object.prototype as Record<string, unknown>;
  proto.mountApi = 'legacy';
  proto.beneath = '/nonexistent';
  try {
    // The filesystem itself refuses size=bogus, through the call of the API in use: neither the
    // inherited 'legacy' (mount(2) would be named) nor the inherited root (ENOENT) applied.
    const expected =
      effectiveMountApi() === 'new' ? { code: 'EINVAL', syscall: 'fsconfig' } : { code: 'EINVAL', syscall: 'mount' };
    t.throws(
      () => mountSync('tmpfs', dir, 'tmpfs', ['rro', 'size=bogus'], {}),
      expected,
      'a polluted prototype is ignored',
    );
  } finally {
    delete proto.mountApi;
    delete proto.beneath;
  }
  t.equal(mountSnapshot(), before, 'mountinfo unchanged');
});

t.test('the kernel says why, and the failing call is named', { skip: cannotMount || noNewApi }, async (t) => {
  const dir = scratchDir(t);
  const before = mountSnapshot();
  const err = t.throws(() => mountSync('tmpfs', dir, 'tmpfs', ['size=bogus'], { mountApi: 'new' })) as Error & {
    kernelMessages: string[];
  };
  t.match(err, {
    code: 'EINVAL',
    errno: -22,
    syscall: 'fsconfig',
    path: 'tmpfs',
    dest: dir,
    kernelMessages: ["tmpfs: Bad value for 'size'"],
  });
  t.equal(err.message, `EINVAL: invalid argument, fsconfig 'tmpfs' -> '${dir}' (tmpfs: Bad value for 'size')`);
  await t.rejects(mount('tmpfs', dir, 'tmpfs', ['nodev', 'bogus_flag'], { mountApi: 'new' }), {
    code: 'EINVAL',
    syscall: 'fsconfig',
    kernelMessages: ["tmpfs: Unknown parameter 'bogus_flag'"],
  });
  const legacy = (await mount('tmpfs', dir, 'tmpfs', ['size=bogus'], { mountApi: 'legacy' }).catch(
    (e: unknown) => e,
  )) as Error & {
    kernelMessages?: string[];
  };
  t.match(legacy, { code: 'EINVAL', syscall: 'mount' });
  t.equal(legacy.kernelMessages, undefined, 'mount(2) sends its reason to dmesg only');
  await t.rejects(mount('none', dir, 'no-such-fs', [], { mountApi: 'new' }), {
    code: 'ENODEV',
    syscall: 'fsopen',
    path: 'none',
    dest: dir,
  });
  const missing = join(dir, 'missing');
  t.throws(() => mountSync(missing, dir, '', ['bind'], { mountApi: 'new' }), {
    code: 'ENOENT',
    syscall: 'open_tree',
    path: missing,
    dest: dir,
  });
  t.throws(() => mountSync('tmpfs', missing, 'tmpfs', [], { mountApi: 'new' }), {
    code: 'ENOENT',
    syscall: 'move_mount',
    dest: missing,
  });
  t.equal(mountSnapshot(), before, 'no failure left anything mounted');
});

t.test('data words reach the filesystem one by one', { skip: cannotMount || noNewApi }, async (t) => {
  const dir = scratchDir(t);
  // Quotes only protect commas from the splitter; the filesystem gets the bare value.
  mountSync(
    'tmpfs',
    dir,
    'tmpfs',
    ['size=1m,mode="750"', 'nr_inodes=100', 'ro', 'noatime', 'nodiratime', 'nosymfollow'],
    { mountApi: 'new' },
  );
  const m = mountAt(dir)!;
  t.ok(m.superOptions.includes('mode=750'), `mode in ${m.superOptions}`);
  t.ok(m.superOptions.includes('nr_inodes=100'), 'nr_inodes');
  t.ok(m.superOptions.includes('ro'), 'superblock read-only, as mount(2) makes it');
  for (const f of ['ro', 'noatime', 'nodiratime', 'nosymfollow'])
    t.ok(m.mountOptions.includes(f), `${f} in ${m.mountOptions}`);
  umountSync(dir);
  mountSync('tmpfs', dir, 'tmpfs', ['strictatime', 'noatime', 'sync', 'dirsync'], { mountApi: 'new' });
  const s = mountAt(dir)!;
  t.notOk(s.mountOptions.includes('noatime'), 'strictatime wins over noatime, as in mount(2)');
  t.notOk(s.mountOptions.includes('relatime'));
  t.ok(s.superOptions.includes('sync') && s.superOptions.includes('dirsync'), `${s.superOptions}`);
  umountSync(dir);
});

t.test('values longer than fsconfig takes (a many-layer overlay)', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  const layers = Array.from({ length: 20 }, (_, i) => join(dir, `layer-with-a-longish-name-${i}`));
  for (const l of layers) mkdirSync(l);
  writeFileSync(join(layers[19]!, 'bottom'), 'b');
  const m = join(dir, 'm');
  mkdirSync(m);
  const lowerdir = `lowerdir=${layers.join(':')}`;
  t.ok(lowerdir.length > 255);
  // Where overlayfs takes lowerdir+ (Linux 6.8+), the new API hands over one layer per fsconfig.
  const onePerLayer = support.complete && support.overlayLowerdirPlus;
  t.equal(effectiveMountApi('auto', [lowerdir]), onePerLayer ? 'new' : 'legacy');
  await mount('overlay', m, 'overlay', [lowerdir], { mountApi: 'auto' });
  t.equal(readFileSync(join(m, 'bottom'), 'utf8'), 'b', 'auto mounted it');
  const layered = layers.map((l) => `lowerdir+=${l}`);
  t.same(
    mountAt(m)!.superOptions.filter((o) => o.startsWith('lowerdir')),
    onePerLayer ? layered : [lowerdir],
    onePerLayer ? 'through the new API, a lowerdir+ per layer' : 'through mount(2)',
  );
  umountSync(m);
  if (support.complete) {
    const before = mountSnapshot();
    if (onePerLayer) {
      mountSync('overlay', m, 'overlay', [lowerdir], { mountApi: 'new' });
      t.same(
        mountAt(m)!.superOptions.filter((o) => o.startsWith('lowerdir')),
        layered,
        'forced new takes it',
      );
      t.equal(readFileSync(join(m, 'bottom'), 'utf8'), 'b');
      umountSync(m);
    } else {
      t.throws(
        () => mountSync('overlay', m, 'overlay', [lowerdir], { mountApi: 'new' }),
        { code: 'EINVAL', syscall: 'fsconfig' },
        'forced new meets the limit without lowerdir+',
      );
    }
    t.equal(mountSnapshot(), before);
    // A layer longer than fsconfig's 255 bytes still cannot go through the new API.
    const deep = join(dir, 'x'.repeat(250));
    mkdirSync(deep);
    t.throws(
      () => mountSync('overlay', m, 'overlay', [`lowerdir=${layers[0]}:${deep}`], { mountApi: 'new' }),
      { code: 'EINVAL', syscall: 'fsconfig' },
      'a layer over 255 bytes: fsconfig refuses it',
    );
    t.equal(effectiveMountApi('auto', [`lowerdir=${layers[0]}:${deep}`]), 'legacy', 'auto takes mount(2) for it');
    t.equal(mountSnapshot(), before);
  }
});

for (const api of apis) {
  t.test(`${api}: an attached mount looks the same as through mount(2)`, { skip: cannotMount }, async (t) => {
    const dir = scratchDir(t);
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    mkdirSync(src);
    mkdirSync(dst);
    writeFileSync(join(src, 'f'), 'x');
    await mount(src, dst, '', ['bind', 'ro', 'nodev', 'rshared'], { mountApi: api });
    const m = mountAt(dst)!;
    t.ok(m.mountOptions.includes('ro') && m.mountOptions.includes('nodev'), `${m.mountOptions}`);
    t.ok(
      m.optionalFields.some((f) => /^shared:\d+$/.test(f)),
      `shared: ${m.optionalFields}`,
    );
    t.throws(() => writeFileSync(join(dst, 'g'), 'y'), { code: 'EROFS' });
    t.equal(readFileSync(join(dst, 'f'), 'utf8'), 'x');
    umountSync(dst);
  });
}

t.test('rro makes a bind read-only all the way down', { skip: cannotMount || noNewApi }, async (t) => {
  const { src, dst } = nestedMounts(scratchDir(t));
  writeFileSync(join(src, 'sub', 'f'), 'below');

  // A plain ro rbind only protects the top: the sub-mount stays writable.
  mountSync(src, dst, '', ['rbind', 'ro'], { mountApi: 'new' });
  writeFileSync(join(dst, 'sub', 'w'), 'y');
  t.pass('ro alone: a write below the top still works (why rro exists)');
  umountSync(join(dst, 'sub'));
  umountSync(dst);

  await mount(src, dst, '', ['rbind', 'rro', 'rnosuid', 'rnodev', 'rnoexec'], { mountApi: 'new' });
  const top = mountAt(dst)!;
  const sub = mountAt(join(dst, 'sub'))!;
  t.ok(sub, 'the sub-mount came along');
  for (const m of [top, sub]) {
    for (const f of ['ro', 'nosuid', 'nodev', 'noexec']) t.ok(m.mountOptions.includes(f), `${m.mountPoint}: ${f}`);
  }
  t.throws(() => writeFileSync(join(dst, 'sub', 'g'), 'x'), { code: 'EROFS' }, 'a write below fails');
  t.throws(() => writeFileSync(join(dst, 'g'), 'x'), { code: 'EROFS' }, 'and at the top');
  t.equal(readFileSync(join(dst, 'sub', 'f'), 'utf8'), 'below');
  writeFileSync(join(src, 'sub', 'g'), 'x');
  t.pass('the source tree stays writable');
  t.notOk(mountAt(join(src, 'sub'))!.mountOptions.includes('ro'));
  umountSync(join(dst, 'sub'));
  umountSync(dst);

  // On a fresh filesystem there is nothing below, so rro is ro.
  mountSync('tmpfs', dst, 'tmpfs', ['rro'], { mountApi: 'new' });
  t.ok(mountAt(dst)!.mountOptions.includes('ro'));
  umountSync(dst);
  umountSync(join(src, 'sub'));
  umountSync(src);
});

t.test(
  'with mount(2), rro is read-only where nothing lies below, refused where it would',
  { skip: cannotMount },
  async (t) => {
    const { src, dst } = nestedMounts(scratchDir(t));
    writeFileSync(join(src, 'f'), 'top');
    // A new superblock: the superblock and the mount come out read-only (KEP-3857's rro where a
    // CRI runtime would have put ro).
    mountSync('tmpfs', dst, 'tmpfs', ['rro', 'size=64k'], { mountApi: 'legacy' });
    t.ok(mountAt(dst)!.mountOptions.includes('ro'), 'mount read-only');
    t.throws(() => writeFileSync(join(dst, 'g'), 'x'), { code: 'EROFS' });
    umountSync(dst);
    // A plain bind brings no sub-mount: rro is its ro, and rw after it does not undo it.
    await mount(src, dst, '', ['bind', 'rro', 'rw'], { mountApi: 'legacy' });
    t.ok(mountAt(dst)!.mountOptions.includes('ro'), 'bind read-only');
    t.equal(mountAt(join(dst, 'sub')), undefined, 'no sub-mount came along');
    t.throws(() => writeFileSync(join(dst, 'g'), 'x'), { code: 'EROFS' });
    t.equal(readFileSync(join(dst, 'f'), 'utf8'), 'top');
    umountSync(dst);
    // An rbind would bring the sub-mount writable: refused, nothing mounted.
    const before = mountSnapshot();
    t.throws(() => mountSync(src, dst, '', ['rbind', 'rro'], { mountApi: 'legacy' }), {
      code: 'ERR_INVALID_MOUNT_OPTION',
      value: 'rro',
    });
    t.equal(mountSnapshot(), before, 'mountinfo unchanged');
    umountSync(join(src, 'sub'));
    umountSync(src);
  },
);

for (const api of apis) {
  t.test(
    `${api}: beneath mounts on the opened target and refuses symlinks and escapes`,
    { skip: cannotMount || noOpenat2 },
    async (t) => {
      const dir = scratchDir(t);
      const { root } = escapeTree(dir, 'a/b', 'link');
      const target = join(root, 'a', 'b');

      mountSync('tmpfs', target, 'tmpfs', ['size=64k'], { mountApi: api, beneath: root });
      t.equal(mountAt(target)?.fstype, 'tmpfs', 'absolute target below the root');
      umountSync(target);
      await mount('tmpfs', 'a/b', 'tmpfs', ['size=64k'], { mountApi: api, beneath: `${root}/` });
      t.ok(mountAt(target), 'relative target, root with a trailing slash');
      umountSync(target);

      // The later steps (propagation, bind remount) must act on the new mount, not what is below.
      mkdirSync(join(root, 'src'));
      mountSync(join(root, 'src'), target, '', ['bind', 'ro', 'rshared'], { mountApi: api, beneath: root });
      const m = mountAt(target)!;
      t.ok(m.mountOptions.includes('ro'), `ro: ${m.mountOptions}`);
      t.ok(
        m.optionalFields.some((f) => f.startsWith('shared:')),
        'shared',
      );
      t.notOk(mountAt(root), 'the root itself was not touched');
      t.throws(() => writeFileSync(join(target, 'x'), ''), { code: 'EROFS' });
      umountSync(target);

      const before = mountSnapshot();
      const via = join(root, 'link', 'b');
      t.throws(() => mountSync('tmpfs', via, 'tmpfs', [], { mountApi: api, beneath: root }), {
        code: 'ELOOP',
        syscall: 'openat2',
        path: via,
      });
      await t.rejects(mount('tmpfs', `${root}/a/../../outside/b`, 'tmpfs', [], { mountApi: api, beneath: root }), {
        code: 'EXDEV',
        syscall: 'openat2',
      });
      t.throws(() => mountSync('tmpfs', join(root, 'nope'), 'tmpfs', [], { mountApi: api, beneath: root }), {
        code: 'ENOENT',
        syscall: 'openat2',
      });
      t.throws(() => mountSync('tmpfs', 'a/b', 'tmpfs', [], { mountApi: api, beneath: join(dir, 'missing') }), {
        code: 'ENOENT',
        syscall: 'open',
      });
      t.equal(mountSnapshot(), before, 'refusals change nothing');
    },
  );
}

// A child process swaps root/a between a directory and a symlink to outside the root as fast as it
// can while this process mounts onto root/a/t thousands of times. Without `beneath` some mounts
// follow the symlink out; with it none may.
const SWAPPER = `
const fs = require('fs');
const [root, outside] = process.argv.slice(1);
const a = root + '/a', dir = root + '/a.dir', link = root + '/a.link';
let swaps = 0;
process.stdin.on('data', () => {});
process.stdin.on('end', () => { process.stdout.write(String(swaps)); process.exit(0); });
process.stdout.write('ready\\n');
function loop() {
  for (let i = 0; i < 2000; i++) {
    try { fs.renameSync(dir, a); fs.renameSync(a, dir); fs.renameSync(link, a); fs.renameSync(a, link); swaps++; } catch {}
  }
  setImmediate(loop);
}
loop();
`;

type RaceTest = Parameters<typeof scratchDir>[0] & Pick<typeof t, 'ok' | 'equal'>;

async function race(
  t: RaceTest,
  api: 'new' | 'legacy' | null,
  iterations: number,
): Promise<{ ok: number; refused: Record<string, number>; escaped: number }> {
  const dir = scratchDir(t);
  const { root, outside } = escapeTree(dir, 'a.dir/t', 'a.link');
  const child = spawn(process.execPath, ['-e', SWAPPER, root, outside], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve) =>
    child.stdout.on('data', (d: string) => ((out += d), out.includes('ready\n') && resolve())),
  );

  const target = join(root, 'a', 't');
  const refused: Record<string, number> = {};
  let ok = 0;
  // At least `iterations`, then on (at most ten times as many) until the outcomes the caller's
  // checks rely on were met: a mount, and with beneath a refusal at the symlink.
  const met = (): boolean => ok > 0 && (api === null || (refused.ELOOP ?? 0) > 0);
  for (let i = 0; i < iterations || (!met() && i < iterations * 10); i++) {
    try {
      mountSync('tmpfs', target, 'tmpfs', ['size=4k'], api ? { mountApi: api, beneath: root } : { mountApi: 'legacy' });
      ok++;
    } catch (e) {
      const code = (e as { code: string }).code;
      refused[code] = (refused[code] ?? 0) + 1;
    }
    // Yield now and then so the swapper's pipe is drained and the loop stays fair.
    if (i % 500 === 499) await new Promise((r) => setImmediate(r));
  }
  child.stdin.end();
  await new Promise((r) => child.once('exit', r));
  const swaps = Number(out.slice(out.indexOf('ready\n') + 6));
  t.ok(swaps > 100, `the swapper ran (${swaps} swaps)`);

  const escaped = mountsUnder(outside).length;
  const inside = mountsUnder(root).length;
  // Take everything down (deepest and newest first) before scratchDir removes the tree.
  for (const m of readMountinfo()
    .filter((m) => m.mountPoint.startsWith(`${dir}/`))
    .reverse()) {
    umountSync(m.mountPoint, { detach: true });
  }
  t.equal(inside + escaped, ok, 'every successful mount is in mountinfo');
  return { ok, refused, escaped };
}

// It forces each API itself, so runs with KATA_STORAGE_MOUNT_API set would only repeat it.
const forced = process.env.KATA_STORAGE_MOUNT_API ? 'the default run covers it (it forces each API itself)' : false;

t.test(
  'symlink-swap race: no mount with beneath ever lands outside the root',
  { skip: cannotMount || noOpenat2 || forced },
  async (t) => {
    const iterations = 3000;
    for (const api of apis) {
      const r = await race(t, api, iterations);
      t.equal(
        r.escaped,
        0,
        `${api}: no mount outside the root (${r.ok} mounted inside, refused: ${JSON.stringify(r.refused)})`,
      );
      t.ok(r.ok > 0, `${api}: some mounts happened while the directory was in place`);
      t.ok((r.refused.ELOOP ?? 0) > 0, `${api}: some met the symlink and were refused with ELOOP`);
      t.same(
        Object.keys(r.refused).filter((c) => c !== 'ELOOP' && c !== 'ENOENT'),
        [],
        'only ELOOP or ENOENT refusals',
      );
    }
    // The control: the same race against a plain path shows the attack is real on this machine.
    const control = await race(t, null, 1000);
    t.comment(`without beneath: ${control.escaped} of ${control.ok} mounts landed outside the root`);
    t.ok(control.ok > 0, 'the control mounted');
  },
);

t.test(
  'a missing new API fails cleanly when forced',
  { skip: cannotMount || (support.complete ? 'the new API is here' : false) },
  async (t) => {
    const dir = scratchDir(t);
    t.throws(() => mountSync('tmpfs', dir, 'tmpfs', [], { mountApi: 'new' }), { code: /^(ENOSYS|EPERM)$/ });
    mountSync('tmpfs', dir, 'tmpfs', [], { mountApi: 'auto' });
    t.ok(mountAt(dir), 'auto fell back to mount(2)');
    umountSync(dir);
  },
);
