// watchable-bind: a tmpfs mirror of the source, polled; Kata's limits and plain-bind fallback.
import t from 'tap';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Sandbox,
  WATCH_MAX_BYTES,
  WATCH_MAX_ENTRIES,
  defaultRegistry,
  type Storage,
  type WatchEvent,
} from '../../lib/index';
import { activeWatches } from '../../lib/handlers/watchable-bind';
import { cannotMount, mountAt, mountSnapshot, mountsUnder, scratchDir } from '../helpers/mountinfo';
import { listen } from '../helpers/events';
import { treeSnapshot } from '../helpers/tree';

// Short for the tests, long enough that a loaded 2-core CI machine keeps to it.
const INTERVAL = 200;

/** A watchable-bind storage of `source` at `mountPoint`. */
const watched = (source: string, mountPoint: string): Storage => ({
  driver: 'watchable-bind',
  source,
  fstype: 'bind',
  mountPoint,
});
const events = (t: { teardown(fn: () => void): void }): WatchEvent[] => listen<WatchEvent>(t, 'kata-storage:watch');

/** Polls `check` until it holds or `ms` passes; resolves with the time it took. */
async function within(ms: number, check: () => boolean): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await sleep(5);
  }
  return performance.now() - start;
}

const read = (p: string): string | undefined => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);

t.test('watchable-bind is registered by default', async (t) => {
  t.ok(defaultRegistry().has('watchable-bind'));
  t.equal(WATCH_MAX_ENTRIES, 16, "Kata's MAX_ENTRIES_PER_STORAGE");
  t.equal(WATCH_MAX_BYTES, 1024 * 1024, "Kata's MAX_SIZE_PER_WATCHABLE_MOUNT");
  t.equal(new Sandbox().watchIntervalMs, 2000, "Kata's WATCH_INTERVAL_SECS");
  t.throws(() => new Sandbox({ watchIntervalMs: -1 }), { code: 'ERR_INVALID_ARG_VALUE' });
});

t.test('watchable-bind for real', { skip: cannotMount }, async (t) => {
  t.test('a tmpfs mirror; changes, additions and deletions appear within two intervals', async (t) => {
    const root = scratchDir(t);
    const src = scratchDir(t, 'kata-storage-src-');
    writeFileSync(join(src, 'a'), 'one');
    mkdirSync(join(src, 'dir'), { mode: 0o750 });
    writeFileSync(join(src, 'dir', 'b'), 'bee', { mode: 0o640 });
    symlinkSync('dir/b', join(src, 'link'));
    const seen = events(t);
    const sb = new Sandbox({ allowedRoots: [root], watchIntervalMs: INTERVAL });
    const mp = join(root, 'watch', 'cm');
    await sb.addStorages([watched(src, mp)], { containerId: 'c' });
    t.equal(mountAt(mp)?.fstype, 'tmpfs', 'a tmpfs at the mount point');
    t.equal(read(join(mp, 'a')), 'one');
    t.equal(read(join(mp, 'dir', 'b')), 'bee');
    t.equal(statSync(join(mp, 'dir')).mode & 0o7777, 0o750, 'directory mode kept');
    t.equal(statSync(join(mp, 'dir', 'b')).mode & 0o7777, 0o640, 'file mode kept');
    t.equal(readlinkSync(join(mp, 'link')), 'dir/b', 'symlinks copied as symlinks');
    t.equal(activeWatches(), 1);

    writeFileSync(join(src, 'a'), 'two');
    writeFileSync(join(src, 'new'), 'added');
    rmSync(join(src, 'dir'), { recursive: true });
    const took = await within(
      2 * INTERVAL + 100,
      () => read(join(mp, 'a')) === 'two' && read(join(mp, 'new')) === 'added' && !existsSync(join(mp, 'dir')),
    );
    t.ok(took <= 2 * INTERVAL + 100, `changed, added and deleted within two intervals (${took.toFixed(0)} ms)`);
    // The files are visible as each is renamed into place; the poll reports once all are done.
    await within(INTERVAL, () => seen.some((e) => e.event === 'sync' && e.mountPoint === mp));
    t.ok(
      seen.some((e) => e.event === 'sync' && e.mountPoint === mp),
      'sync events published',
    );
    t.notOk(
      readdirSync(mp).some((n) => n.startsWith('.kata-watch-')),
      'no file written aside is left',
    );

    await sb.removeContainer('c');
    t.equal(mountsUnder(root).length, 0, 'the tmpfs is gone');
    t.equal(activeWatches(), 0, 'watching stopped');
    t.notOk(existsSync(mp));
  });

  t.test('a reader never sees a half-written file: Kubernetes ..data swaps, read in a loop', async (t) => {
    const root = scratchDir(t);
    const src = scratchDir(t, 'kata-storage-src-');
    const big = (n: number): string => String(n).repeat(60_000);
    const version = (n: number): void => {
      mkdirSync(join(src, `..v${n}`));
      writeFileSync(join(src, `..v${n}`, 'key'), big(n));
      symlinkSync(`..v${n}`, join(src, '..data_tmp'));
      renameSync(join(src, '..data_tmp'), join(src, '..data'));
      if (n > 1) rmSync(join(src, `..v${n - 1}`), { recursive: true });
    };
    version(1);
    symlinkSync('..data/key', join(src, 'key'));
    const sb = new Sandbox({ allowedRoots: [root], watchIntervalMs: 20 });
    const mp = join(root, 'cm');
    await sb.addStorages([watched(src, mp)], { containerId: 'c' });
    let reads = 0;
    let bad = 0;
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        const v = read(join(mp, 'key'));
        reads++;
        if (v === undefined || v.length !== 60_000 || v !== v[0]!.repeat(60_000)) bad++;
        await sleep(0);
      }
    })();
    for (let n = 2; n <= 6; n++) {
      version(n);
      await within(2000, () => read(join(mp, 'key'))?.[0] === String(n));
    }
    stop = true;
    await reader;
    t.ok(reads > 50, `${reads} reads`);
    t.equal(bad, 0, 'every read saw one whole version');
    await sb.removeContainer('c');
  });

  t.test('over 16 entries: a plain bind from the start, as Kata falls back', async (t) => {
    const root = scratchDir(t);
    const src = scratchDir(t, 'kata-storage-src-');
    // The source directory counts as an entry: 15 files is 16 entries, watched; 16 files is not.
    for (let i = 0; i < WATCH_MAX_ENTRIES; i++) writeFileSync(join(src, `f${i}`), 'x');
    const seen = events(t);
    const sb = new Sandbox({ allowedRoots: [root], watchIntervalMs: INTERVAL });
    const mp = join(root, 'big');
    await sb.addStorages([watched(src, mp)], { containerId: 'c' });
    const m = mountAt(mp)!;
    t.not(m.fstype, 'tmpfs', 'no tmpfs');
    t.equal(statSync(mp).ino, statSync(src).ino, 'the source itself is bound');
    t.match(seen, [{ event: 'fallback', limit: 'entries', value: WATCH_MAX_ENTRIES + 1 }]);
    t.equal(activeWatches(), 0);
    await sb.removeContainer('c');
    t.equal(mountAt(mp), undefined);
  });

  t.test('growing past 1 MiB while watched: a bind on top within two intervals, both gone on release', async (t) => {
    const root = scratchDir(t);
    const src = scratchDir(t, 'kata-storage-src-');
    writeFileSync(join(src, 'small'), 'x');
    const seen = events(t);
    const sb = new Sandbox({ allowedRoots: [root], watchIntervalMs: INTERVAL });
    const mp = join(root, 'grow');
    await sb.addStorages([watched(src, mp)], { containerId: 'c' });
    t.equal(mountAt(mp)?.fstype, 'tmpfs');
    writeFileSync(join(src, 'large'), '');
    truncateSync(join(src, 'large'), WATCH_MAX_BYTES); // with 'small': one byte over
    await within(2 * INTERVAL + 100, () => statSync(mp).ino === statSync(src).ino);
    t.equal(mountsUnder(mp).length, 2, 'the bind sits on the tmpfs');
    // The kernel shows the bind once the pool thread made it; the event follows when the JS
    // thread takes the completion, a moment later.
    await within(INTERVAL, () => seen.some((e) => e.event === 'fallback'));
    t.match(
      seen.find((e) => e.event === 'fallback'),
      { limit: 'bytes', value: WATCH_MAX_BYTES + 1 },
    );
    t.equal(activeWatches(), 1, 'held until release');
    await sb.removeContainer('c');
    t.equal(mountsUnder(root).length, 0, 'bind and tmpfs both unmounted');
    t.equal(activeWatches(), 0);
  });

  t.test('a source that disappears is reported, polling goes on and picks it up again', async (t) => {
    const root = scratchDir(t);
    const parent = scratchDir(t, 'kata-storage-src-');
    const src = join(parent, 'cm');
    mkdirSync(src);
    writeFileSync(join(src, 'a'), '1');
    const seen = events(t);
    const sb = new Sandbox({ allowedRoots: [root], watchIntervalMs: INTERVAL });
    const mp = join(root, 'gone');
    await sb.addStorages([watched(src, mp)], { containerId: 'c' });
    renameSync(src, join(parent, 'away'));
    await within(3 * INTERVAL, () => seen.some((e) => e.event === 'source-missing'));
    t.equal(read(join(mp, 'a')), '1', 'the last copy stays readable');
    renameSync(join(parent, 'away'), src);
    writeFileSync(join(src, 'a'), '2');
    await within(3 * INTERVAL, () => read(join(mp, 'a')) === '2');
    t.pass('updates resume when the source is back');
    await sb.removeContainer('c');
  });

  t.test('one slow source does not delay another; the JS thread stays free', async (t) => {
    const root = scratchDir(t);
    const slow = scratchDir(t, 'kata-storage-src-');
    const fast = scratchDir(t, 'kata-storage-src-');
    writeFileSync(join(slow, 'f'), '0');
    writeFileSync(join(fast, 'f'), '0');
    const sb = new Sandbox({ allowedRoots: [root], watchIntervalMs: INTERVAL });
    await sb.addStorages([watched(slow, join(root, 'slow')), watched(fast, join(root, 'fast'))], { containerId: 'c' });
    // A 1 MiB file under the limit: each of its polls copies a megabyte on libuv's pool.
    writeFileSync(join(slow, 'f'), Buffer.alloc(WATCH_MAX_BYTES - 16, 1));
    let maxGap = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 5);
    writeFileSync(join(fast, 'f'), '1');
    const took = await within(2 * INTERVAL + 100, () => read(join(root, 'fast', 'f')) === '1');
    await within(2000, () => statSync(join(root, 'slow', 'f')).size === WATCH_MAX_BYTES - 16);
    clearInterval(ticker);
    t.ok(took <= 2 * INTERVAL + 100, `fast source updated in ${took.toFixed(0)} ms`);
    t.ok(maxGap < 200, `event loop never stalled ${maxGap.toFixed(1)} ms`);
    await sb.removeContainer('c');
  });

  t.test('bad input is refused with nothing touched; a missing source rolls back', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const before = mountSnapshot();
    for (const source of ['relative/dir', '/a/../b', '/trailing/']) {
      await t.rejects(sb.addStorages([watched(source, join(root, 'x'))]), {
        code: 'ERR_INVALID_STORAGE',
        field: 'source',
        value: source,
      });
    }
    await t.rejects(
      sb.addStorages([
        { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'first') },
        watched(join(root, 'missing'), join(root, 'x')),
      ]),
      { code: 'ENOENT' },
    );
    t.equal(mountSnapshot(), before, 'mountinfo before == after');
    t.equal(treeSnapshot(root), '', 'no directory left');
    t.equal(activeWatches(), 0);
  });

  t.test('a source reached through a symlink is mirrored; links inside are copied, not followed', async (t) => {
    const root = scratchDir(t);
    const src = scratchDir(t, 'kata-storage-src-');
    mkdirSync(join(src, 'real'));
    writeFileSync(join(src, 'real', 'f'), 'via link');
    symlinkSync('/etc', join(src, 'real', 'outside'));
    symlinkSync(join(src, 'real'), join(src, 'link'));
    const sb = new Sandbox({ allowedRoots: [root], watchIntervalMs: INTERVAL });
    const mp = join(root, 'l');
    await sb.addStorages([watched(join(src, 'link'), mp)], { containerId: 'c' });
    t.equal(mountAt(mp)?.fstype, 'tmpfs');
    t.equal(read(join(mp, 'f')), 'via link');
    t.equal(readlinkSync(join(mp, 'outside')), '/etc', 'a link inside stays a link');
    await sb.removeContainer('c');
  });

  t.test('a file source is a plain bind of the file', async (t) => {
    const root = scratchDir(t);
    const src = scratchDir(t, 'kata-storage-src-');
    writeFileSync(join(src, 'token'), 'secret');
    const sb = new Sandbox({ allowedRoots: [root] });
    const mp = join(root, 'token');
    await sb.addStorages([watched(join(src, 'token'), mp)], { containerId: 'c' });
    t.equal(read(mp), 'secret');
    t.ok(mountAt(mp));
    await sb.removeContainer('c');
    t.equal(mountAt(mp), undefined);
    t.notOk(existsSync(mp));
  });
});
