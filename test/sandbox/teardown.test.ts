// Teardown never destroys data: every recursive removal the package does (the native RemoveTree
// behind `local`, overlay upper/work dirs and makeDirectory trees) checks the whole tree for
// mounts, directory and file mount points at any depth, before deleting anything.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, mountSync, umountSync } from '../../lib/index';
import { native } from '../../lib/native';
import { cannotMount, mountSnapshot, scratchDir } from '../helpers/mountinfo';
import { treeSnapshot } from '../helpers/tree';
import { readFileSync } from 'node:fs';

/** Every file's path and content under `root`, with the tree's shape: byte-for-byte proof. */
function contents(root: string): string {
  const lines = [treeSnapshot(root)];
  const walk = (dir: string): void => {
    for (const line of treeSnapshot(dir).split('\n')) {
      if (line.startsWith('f ')) {
        const rel = line.split(' ')[1]!;
        lines.push(`${rel}=${readFileSync(join(dir, rel), 'utf8')}`);
      }
    }
  };
  walk(root);
  return lines.join('\n');
}

function fill(dir: string): void {
  for (const name of ['a1', 'b2', 'c3', 'x8', 'z9']) writeFileSync(join(dir, name), `data of ${name}\n`);
  mkdirSync(join(dir, 'd/e/f'), { recursive: true });
  writeFileSync(join(dir, 'd/e/f/deep'), 'deep\n');
  writeFileSync(join(dir, 'd/e/mid'), 'mid\n');
}

async function removeTree(path: string): Promise<void> {
  const e = await native.removeTree(path);
  if (e) throw e;
}

t.test('RemoveTree refuses a tree holding any mount and leaves it untouched', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  const outsideFile = join(dir, 'outside-file');
  writeFileSync(outsideFile, 'outside\n');
  const outsideDir = join(dir, 'outside-dir');
  mkdirSync(outsideDir);
  writeFileSync(join(outsideDir, 'keep'), 'keep\n');

  // [where below the tree, file or directory mount, source kind]
  const cases: Array<[string, 'file' | 'dir', 'bind' | 'tmpfs']> = [
    ['m', 'file', 'bind'],
    ['d/m', 'file', 'bind'],
    ['d/e/f/m', 'file', 'bind'],
    ['m', 'dir', 'bind'],
    ['d/m', 'dir', 'tmpfs'],
    ['d/e/f/m', 'dir', 'bind'],
    ['d/e/f/deep', 'file', 'bind'], // an existing file of the tree is the mount point
  ];
  for (const [rel, kind, how] of cases) {
    await t.test(`${kind} mount (${how}) at vol/${rel}`, async (t) => {
      const vol = join(dir, `vol-${kind}-${how}-${rel.replace(/\//g, '_')}`);
      mkdirSync(vol);
      fill(vol);
      const at = join(vol, rel);
      if (kind === 'file') {
        writeFileSync(at, 'mount point\n', { flag: 'a' });
        mountSync(outsideFile, at, '', ['bind']);
      } else {
        mkdirSync(at, { recursive: true });
        if (how === 'tmpfs') mountSync('tmpfs', at, 'tmpfs', ['size=64k']);
        else mountSync(outsideDir, at, '', ['bind']);
      }
      const before = contents(vol);
      const mounts = mountSnapshot();
      await t.rejects(removeTree(vol), { code: 'EBUSY', path: at }, 'refused, naming the mount');
      t.equal(contents(vol), before, 'every file and directory is still there, byte for byte');
      t.equal(mountSnapshot(), mounts, 'the mount is untouched');
      umountSync(at);
      await removeTree(vol);
      t.throws(() => treeSnapshot(vol), { code: 'ENOENT' }, 'once the mount is gone the tree goes');
    });
  }
  t.equal(readFileSync(outsideFile, 'utf8'), 'outside\n', 'the bound file was never touched');
  t.equal(readFileSync(join(outsideDir, 'keep'), 'utf8'), 'keep\n');
});

t.test(
  'a local storage with a file bind-mounted inside is refused whole on release',
  { skip: cannotMount },
  async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const vol = join(root, 'vol');
    await sb.addStorages([{ driver: 'local', source: 'local', fstype: 'local', mountPoint: vol }], {
      containerId: 'c',
    });
    for (const name of ['a1', 'b2', 'c3', 'x8', 'z9']) writeFileSync(join(vol, name), name);
    const outside = join(scratchDir(t), 'outside');
    writeFileSync(outside, 'outside');
    writeFileSync(join(vol, 'm'), '');
    mountSync(outside, join(vol, 'm'), '', ['bind']);
    const before = contents(vol);
    // Whether the release rejects or reports the failed cleanup, the data must all be there.
    const r = await sb.removeContainer('c').then(
      () => undefined,
      (e: unknown) => e,
    );
    if (r !== undefined) t.match(r, { code: 'EBUSY' });
    t.equal(contents(vol), before, 'a1 b2 c3 x8 z9 are all still there');
    umountSync(join(vol, 'm'));
    await sb.destroy();
    t.throws(() => treeSnapshot(vol), { code: 'ENOENT' }, 'removed once nothing is mounted in it');
  },
);

t.test(
  'overlay upper/work directories (makeDirectory trees) are refused whole when a file is mounted inside',
  { skip: cannotMount },
  async (t) => {
    const root = scratchDir(t);
    const lower = scratchDir(t);
    writeFileSync(join(lower, 'l'), 'l');
    const sb = new Sandbox({ allowedRoots: [root] });
    const upper = join(root, 'upper');
    await sb.addStorages(
      [
        {
          driver: 'overlayfs',
          source: 'overlay',
          fstype: 'overlay',
          options: [`lowerdir=${lower}`, `upperdir=${upper}`, `workdir=${join(root, 'work')}`],
          mountPoint: join(root, 'm'),
        },
      ],
      { containerId: 'c' },
    );
    mkdirSync(join(root, 'm', 'deep', 'er'), { recursive: true });
    for (const name of ['a1', 'b2', 'deep/c3', 'deep/er/x8']) writeFileSync(join(root, 'm', name), name);
    // Mounted into the upper directory itself, below the overlay: only the removal can meet it.
    const outside = join(lower, 'l');
    writeFileSync(join(upper, 'deep', 'er', 'z9'), 'z9');
    mountSync(outside, join(upper, 'deep', 'er', 'z9'), '', ['bind']);
    const r = await sb.removeContainer('c').then(
      () => undefined,
      (e: unknown) => e,
    );
    if (r !== undefined) t.match(r, { code: 'EBUSY' });
    for (const name of ['a1', 'b2', 'deep/c3', 'deep/er/x8'])
      t.equal(readFileSync(join(upper, name), 'utf8'), name, `${name} is still in the upper directory`);
    umountSync(join(upper, 'deep', 'er', 'z9'));
    await sb.destroy();
    t.throws(() => treeSnapshot(upper), { code: 'ENOENT' }, 'removed once nothing is mounted in it');
  },
);
