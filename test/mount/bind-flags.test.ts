// A bind's per-mount flags are its source's flags changed by the option words, in order: the
// same through mount(2) (which must read the source's flags before its MS_REMOUNT|MS_BIND) and
// through the new API (open_tree + mount_setattr), and the same for bind and rbind.
import t from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { mountSync, newMountApiSupport, umountSync } from '../../lib/index';
import { cannotMount, mountAt, mountSnapshot, scratchDir } from '../helpers/mountinfo';

const apis: Array<'new' | 'legacy'> = newMountApiSupport().complete ? ['new', 'legacy'] : ['legacy'];

/** Empty `src` and `dst` directories in a scratch directory. */
function srcDst(t: Parameters<typeof scratchDir>[0]): { src: string; dst: string } {
  const dir = scratchDir(t);
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  mkdirSync(src);
  mkdirSync(dst);
  return { src, dst };
}

/** The per-mount options mountinfo shows, without the ones every mount has. */
const perMount = (path: string): string => mountAt(path)!.mountOptions.join(',');

// [source's flags (tmpfs mount words), bind words, expected per-mount options of the bind]
const cases: Array<[string[], string[], string]> = [
  // A read-only bind of a nosuid,nodev,noexec source keeps the source's flags (a field report).
  [['nosuid', 'nodev', 'noexec'], ['ro'], 'ro,nosuid,nodev,noexec,relatime'],
  [['noexec'], ['nosuid'], 'rw,nosuid,noexec,relatime'],
  [[], ['ro'], 'ro,relatime'],
  [[], [], 'rw,relatime'],
  // clear words clear
  [['nosuid', 'nodev', 'noexec'], ['suid'], 'rw,nodev,noexec,relatime'],
  [['nosuid', 'nodev', 'noexec'], ['dev', 'exec'], 'rw,nosuid,relatime'],
  [['ro', 'nosuid'], ['rw'], 'rw,nosuid,relatime'],
  [['ro'], ['rw', 'ro'], 'ro,relatime'],
  [[], ['ro', 'rw'], 'rw,relatime'],
  [['nosuid'], ['suid', 'nosuid'], 'rw,nosuid,relatime'],
  [['nodev'], ['ro,dev'], 'ro,relatime'],
  [['nosymfollow'], ['ro'], 'ro,relatime,nosymfollow'],
  [['nosymfollow'], ['symfollow'], 'rw,relatime'],
  // atime: one field, kept unless a word names it; strictatime wins whatever the order
  [['noatime'], ['ro'], 'ro,noatime'],
  [['noatime'], ['atime'], 'rw,relatime'],
  [['noatime'], ['relatime'], 'rw,relatime'],
  [['strictatime'], ['nosuid'], 'rw,nosuid'],
  [['strictatime'], ['nostrictatime'], 'rw,relatime'],
  [[], ['noatime'], 'rw,noatime'],
  [[], ['strictatime', 'noatime'], 'rw'],
  [[], ['noatime', 'strictatime'], 'rw'],
  [['nodiratime'], ['nosuid'], 'rw,nosuid,nodiratime,relatime'],
  [['nodiratime'], ['diratime'], 'rw,relatime'],
];

t.test(
  'bind flags = source flags changed by the words, on both APIs, bind and rbind',
  { skip: cannotMount },
  async (t) => {
    const { src, dst } = srcDst(t);
    for (const [srcWords, words, want] of cases) {
      mountSync('tmpfs', src, 'tmpfs', ['size=64k', ...srcWords]);
      const sourceBefore = perMount(src);
      try {
        for (const api of apis) {
          for (const bind of ['bind', 'rbind']) {
            mountSync(src, dst, '', [bind, ...words], { mountApi: api });
            t.equal(perMount(dst), want, `${api}: [${srcWords}] + ${bind},${words.join(',')}`);
            umountSync(dst);
          }
        }
        t.equal(perMount(src), sourceBefore, 'the source is unchanged');
      } finally {
        umountSync(src);
      }
    }
  },
);

t.test('a flag the kernel refuses to clear is EPERM naming it, on both APIs', { skip: cannotMount }, async (t) => {
  const { src, dst } = srcDst(t);
  mountSync('tmpfs', src, 'tmpfs', ['size=64k', 'nosuid', 'noexec', 'ro']);
  t.teardown(() => umountSync(src));
  const before = mountSnapshot();
  // In a new user namespace the inherited mount's flags are locked (MNT_LOCK_*). One child runs
  // every case: starting one costs seconds.
  const words = [['nodev'], ['ro', 'nosuid'], ['suid'], ['rw', 'exec']];
  const list = apis.flatMap((api) => words.map((w) => [api, ...w]));
  const r = spawnSync(
    'unshare',
    [
      '-U',
      '-r',
      '-m',
      '--propagation',
      'private',
      process.execPath,
      ...process.execArgv,
      join(__dirname, '..', 'fixtures', 'bind-in-userns.ts'),
      src,
      dst,
      JSON.stringify(list),
    ],
    { encoding: 'utf8', timeout: 120000 },
  );
  t.equal(r.status, 0, `the child ran (${r.stderr})`);
  const results = JSON.parse(r.stdout) as Array<Record<string, string>>;
  apis.forEach((api, i) => {
    const [nodev, again, suid, rw] = results.slice(i * words.length, (i + 1) * words.length);
    t.same(nodev, { ok: true }, `${api}: setting a flag on a locked mount is allowed`);
    t.same(again, { ok: true }, `${api}: repeating a locked flag is allowed`);
    t.equal(suid!.code, 'EPERM', `${api}: suid`);
    t.match(suid!.detail, /refuses to clear nosuid/, `${api}: the error names the flag`);
    t.match(suid!.message, /nosuid/);
    t.equal(rw!.code, 'EPERM');
    t.match(rw!.detail, /refuses to clear ro, noexec/, `${api}: every flag being cleared is named`);
  });
  t.equal(mountSnapshot(), before, 'nothing mounted or changed here');
});
