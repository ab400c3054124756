// Kata's bind watcher (agent watcher.rs), for Kubernetes configmaps, secrets and downward API
// volumes whose shared filesystem carries no inotify: the source tree is mirrored into a tmpfs at
// the mount point and polled. Kata's limits and fallback carry over: more than 16 entries or more
// than 1 MiB of files and symlinks, and the mirror is replaced by a plain bind of the source.
//
// Unlike Kata, a reader never sees a half-written file or a dangling link: every file and symlink
// is written aside in its directory and renamed over the old one, additions and changes are
// applied before deletions (Kubernetes' `..data` link swap never points at a removed directory),
// and each source polls on its own timer with asynchronous fs calls, so neither the JS thread nor
// another source waits for a slow one.
import {
  copyFile,
  lchown,
  lstat,
  mkdir,
  readdir,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  chmod,
  chown,
} from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { channels, type WatchEvent } from '../events';

/** Kata's MAX_ENTRIES_PER_STORAGE: files, symlinks and directories, the source itself included. */
export const WATCH_MAX_ENTRIES = 16;
/** Kata's MAX_SIZE_PER_WATCHABLE_MOUNT: bytes of files and symlinks (link text length). */
export const WATCH_MAX_BYTES = 1024 * 1024;
/** Kata's WATCH_INTERVAL_SECS. */
export const WATCH_INTERVAL_MS = 2000;

export interface Node {
  type: 'dir' | 'file' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  mtimeNs: bigint;
  ino: bigint;
  link?: string;
}

/** The source outgrew Kata's limits. */
export class WatchLimitExceeded extends Error {
  constructor(
    readonly limit: 'entries' | 'bytes',
    readonly value: number,
  ) {
    super(
      limit === 'entries'
        ? `${value} entries (Kata watches at most ${WATCH_MAX_ENTRIES})`
        : `${value} bytes (Kata watches at most ${WATCH_MAX_BYTES})`,
    );
  }
}

/**
 * Walks `source` (lstat below it: no symlink inside is followed) into relative path -> Node, parents before
 * children; throws WatchLimitExceeded as soon as a limit is passed, or the fs error.
 */
export async function scanTree(source: string): Promise<Map<string, Node>> {
  const tree = new Map<string, Node>();
  let bytes = 0;
  const visit = async (rel: string): Promise<void> => {
    const path = rel === '' ? source : join(source, rel);
    // The source itself may be a link to its directory (Kata's is_dir follows it); nothing below is followed.
    const st = rel === '' ? await stat(path, { bigint: true }) : await lstat(path, { bigint: true });
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : undefined;
    if (type === undefined) return; // sockets, fifos, devices: Kata copies none either
    const node: Node = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: st.size,
      mtimeNs: st.mtimeNs,
      ino: st.ino,
    };
    if (type === 'symlink') node.link = await readlink(path);
    tree.set(rel, node);
    if (tree.size > WATCH_MAX_ENTRIES) throw new WatchLimitExceeded('entries', tree.size);
    if (type !== 'dir') {
      bytes += Number(st.size);
      if (bytes > WATCH_MAX_BYTES) throw new WatchLimitExceeded('bytes', bytes);
      return;
    }
    for (const name of (await readdir(path)).sort()) await visit(rel === '' ? name : join(rel, name));
  };
  await visit('');
  return tree;
}

const same = (a: Node, b: Node): boolean =>
  a.type === b.type &&
  a.mode === b.mode &&
  a.uid === b.uid &&
  a.gid === b.gid &&
  (a.type === 'dir' || (a.size === b.size && a.mtimeNs === b.mtimeNs && a.ino === b.ino && a.link === b.link));

const asideName = (target: string): string => join(dirname(target), `.kata-watch-${randomBytes(6).toString('hex')}`);

async function writeAside(source: string, target: string, node: Node): Promise<void> {
  const aside = asideName(target);
  try {
    if (node.type === 'symlink') {
      await symlink(node.link!, aside);
      await lchown(aside, node.uid, node.gid);
    } else {
      await copyFile(source, aside);
      await chown(aside, node.uid, node.gid);
      await chmod(aside, node.mode);
    }
    await rename(aside, target);
  } catch (err) {
    await rm(aside, { force: true });
    throw err;
  }
}

/**
 * Makes `target` mirror `next` (the tree scanned from `source`), given that it mirrors `prev`.
 * Returns the counts of what it did.
 */
export async function applyTree(
  source: string,
  target: string,
  prev: ReadonlyMap<string, Node>,
  next: ReadonlyMap<string, Node>,
): Promise<{ added: number; changed: number; removed: number }> {
  let added = 0;
  let changed = 0;
  let removed = 0;
  // Directories, then files, then symlinks: a link is swapped only once what it points to is
  // in place (Kubernetes' `..data` -> `..2024_...` switch).
  const order = { dir: 0, file: 1, symlink: 2 };
  const todo = [...next].filter(([rel, node]) => {
    const old = prev.get(rel);
    return old === undefined || !same(old, node);
  });
  todo.sort((a, b) => order[a[1].type] - order[b[1].type]);
  for (const [rel, node] of todo) {
    const old = prev.get(rel);
    if (old === undefined) added++;
    else changed++;
    const to = rel === '' ? target : join(target, rel);
    const from = rel === '' ? source : join(source, rel);
    if (node.type === 'dir') {
      // A file or link that became a directory goes first; rename cannot replace one with it.
      if (old !== undefined && old.type !== 'dir') await rm(to, { force: true });
      await mkdir(to, { recursive: true });
      await chown(to, node.uid, node.gid);
      await chmod(to, node.mode);
    } else {
      if (old?.type === 'dir') await rm(to, { recursive: true, force: true });
      await writeAside(from, to, node);
    }
  }
  // Deletions last, deepest first.
  for (const rel of [...prev.keys()].reverse()) {
    if (rel === '' || next.has(rel)) continue;
    removed++;
    await rm(join(target, rel), { recursive: true, force: true });
  }
  return { added, changed, removed };
}

export interface WatchOptions {
  source: string;
  target: string;
  intervalMs: number;
  /** The first scan, already mirrored into `target`. */
  initial: Map<string, Node>;
  /** Called once when the source outgrows the limits; resolves when the plain bind is in place. */
  fallback(limit: WatchLimitExceeded): Promise<void>;
}

/** One polled source. Its own timer: a slow source delays nobody else. */
export class Watch {
  #tree: Map<string, Node>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  /** True once the source was replaced by a plain bind (Kata's `watch = false`). */
  fellBack = false;

  constructor(readonly opts: WatchOptions) {
    this.#tree = opts.initial;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped || this.fellBack) return;
    // unref: an agent that forgets to release a storage must not be kept alive by its poller.
    this.#timer = setTimeout(() => {
      this.#running = this.poll().finally(() => {
        this.#running = undefined;
        this.#schedule();
      });
    }, this.opts.intervalMs).unref();
  }

  /** One poll: scan, apply, report. Never throws: every failure is an event and polling goes on. */
  async poll(): Promise<void> {
    const { source, target } = this.opts;
    const report = (e: Omit<WatchEvent, 'mountPoint' | 'source'>): void => {
      if (channels.watch.hasSubscribers) channels.watch.publish({ mountPoint: target, source, ...e });
    };
    try {
      const next = await scanTree(source);
      if (this.#stopped) return;
      const counts = await applyTree(source, target, this.#tree, next);
      this.#tree = next;
      if (counts.added + counts.changed + counts.removed > 0) report({ event: 'sync', ...counts });
    } catch (err) {
      if (this.#stopped) return;
      if (err instanceof WatchLimitExceeded) {
        try {
          await this.opts.fallback(err);
          this.fellBack = true;
          report({ event: 'fallback', limit: err.limit, value: err.value });
        } catch (e) {
          // Kata: "if there's an error in creating bind mount, we'll continue watching".
          report({ event: 'error', error: e as Error });
        }
        return;
      }
      // A file vanishing between scan and copy is an ordinary race (the next poll settles it);
      // the source itself vanishing is what gets reported as missing.
      const gone = await stat(source).then(
        () => false,
        () => true,
      );
      report({ event: gone ? 'source-missing' : 'error', error: err as Error });
    }
  }

  /** Stops polling and waits for a poll in progress to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}
