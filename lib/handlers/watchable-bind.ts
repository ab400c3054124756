// watchable-bind (Kata's DRIVER_WATCHABLE_BIND_TYPE, agent bind_watcher_handler.rs + watcher.rs):
// a tmpfs at the mount point holding a copy of the source directory, kept up to date by polling
// (watcher.ts beside it), so a container sees configmap/secret updates as inotify events. A source over
// Kata's limits (16 entries, 1 MiB) is a plain bind instead, from the start or as soon as it
// grows past them. A file source is a plain bind (a tmpfs cannot be mounted on a file).
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { StorageError } from '../errors';
import { channels } from '../events';
import { mount, umount } from '../mount';
import type { ReleaseContext, StorageContext, StorageHandler } from '../handler';
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
    const mountApi = ctx.mountApi;
    watches.set(
      mountPoint,
      new Watch({
        source,
        target: mountPoint,
        intervalMs: ctx.watchIntervalMs,
        initial,
        // Kata's fallback: a plain MS_BIND of the source, here on top of the tmpfs; release takes
        // it down before the tmpfs.
        fallback: () => mount(source, mountPoint, '', ['bind'], mountApi === undefined ? {} : { mountApi }),
      }),
    );
    return mountPoint;
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
