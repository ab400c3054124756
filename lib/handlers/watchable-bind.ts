// watchable-bind (Kata's DRIVER_WATCHABLE_BIND_TYPE, agent bind_watcher_handler.rs + watcher.rs):
// a tmpfs at the mount point holding a copy of the source directory, kept up to date by polling
// (watcher.ts beside it), so a container sees configmap/secret updates as inotify events. A source over
// Kata's limits (16 entries, 1 MiB) is a plain bind instead, from the start or as soon as it
// grows past them. A file source is a plain bind (a tmpfs cannot be mounted on a file).
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { StorageError } from '../errors';
import { channels } from '../events';
import { mount, umount, type MountApi } from '../mount';
import { mountIdAt } from '../native';
import type { ReleaseContext, ResumeContext, StorageContext, StorageHandler } from '../handler';
import type { Storage } from '../storage';
import { Watch, WatchLimitExceeded, applyTree, scanTree } from './watcher';

/** Active pollers by mount point (a mount point is one path on the machine). */
const watches = new Map<string, Watch>();

/** Number of sources being polled now (for tests and operators). */
export function activeWatches(): number {
  return watches.size;
}

export const watchableBindHandler: StorageHandler = {
  validate(storage: Storage): void {
    const s = storage.source;
    if (!s.startsWith('/') || posix.normalize(s) !== s || (s.length > 1 && s.endsWith('/'))) {
      throw new StorageError(
        'ERR_INVALID_STORAGE',
        `watchable-bind source ${JSON.stringify(s)} must be an absolute, normalized path`,
        {
          value: s,
          field: 'source',
        },
      );
    }
  },
  async create(storage: Storage, ctx: StorageContext): Promise<string> {
    const { source, mountPoint } = storage;
    const st = await stat(source);
    const bind = async (file: boolean): Promise<string> => {
      await ctx.makeMountPoint({ file });
      await ctx.mount(source, mountPoint, '', ['bind']);
      return mountPoint;
    };
    if (!st.isDirectory()) return bind(true);
    let initial;
    try {
      initial = await scanTree(source);
    } catch (err) {
      if (!(err instanceof WatchLimitExceeded)) throw err;
      if (channels.watch.hasSubscribers)
        channels.watch.publish({ mountPoint, source, event: 'fallback', limit: err.limit, value: err.value });
      return bind(false);
    }
    await ctx.makeMountPoint();
    await ctx.mount('tmpfs', mountPoint, 'tmpfs', ['nosuid', 'nodev']);
    await applyTree(source, mountPoint, new Map(), initial);
    watch(source, mountPoint, ctx.watchIntervalMs, ctx.mountApi, initial);
    return mountPoint;
  },
  /**
   * After an agent restart: a copy (a tmpfs of its own, still on top at the mount point) is
   * polled again, from what the copy holds now, so what changed in the source meanwhile (added,
   * changed or deleted) is applied at the first poll. A plain bind (a file, a source that was
   * over the limits, or the fallback stacked on the copy) was never polled and is left as it is.
   */
  async resume(storage: Storage, ctx: ResumeContext): Promise<void> {
    const { source, mountPoint } = storage;
    const own = ctx.mounts[0];
    if (own === undefined || ctx.mounts.length !== 1 || watches.has(mountPoint)) return;
    const [at, src] = await Promise.all([stat(mountPoint), stat(source).catch(() => undefined)]);
    // A bind shows its source's device; the copy is a filesystem of its own.
    if (!at.isDirectory() || (src !== undefined && src.dev === at.dev)) return;
    if (mountIdAt(mountPoint) !== own.id) return;
    let initial;
    try {
      initial = await scanTree(mountPoint);
    } catch {
      initial = new Map();
    }
    watch(source, mountPoint, ctx.watchIntervalMs, ctx.mountApi, initial);
  },
  async release(path: string, _ctx: ReleaseContext): Promise<void> {
    const w = watches.get(path);
    if (w === undefined) return;
    await w.stop();
    if (w.fellBack) {
      await umount(path);
      w.fellBack = false;
    }
    watches.delete(path);
  },
};

function watch(
  source: string,
  mountPoint: string,
  intervalMs: number,
  mountApi: MountApi | undefined,
  initial: Awaited<ReturnType<typeof scanTree>>,
): void {
  watches.set(
    mountPoint,
    new Watch({
      source,
      target: mountPoint,
      intervalMs,
      initial,
      // Kata's fallback: a plain MS_BIND of the source, here on top of the tmpfs; release takes
      // it down before the tmpfs.
      fallback: () => mount(source, mountPoint, '', ['bind'], mountApi === undefined ? {} : { mountApi }),
    }),
  );
}
