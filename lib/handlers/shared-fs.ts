// virtio-fs and 9p: the source is a tag the hypervisor exposes. An agent started with the shared
// filesystem already mounted (Kata's guest pre-mount) must accept that mount, not fail on it.
import { isMountPoint } from '../mount';
import type { StorageContext, StorageHandler } from '../handler';
import type { PreparedStorage, Storage } from '../storage';
import { applyFsGroup, mountStorage, mountedSourceAt } from './common';

export function sharedFsHandler(extraOptions: (storage: Storage) => string[]): StorageHandler {
  return {
    async create(storage: PreparedStorage, ctx: StorageContext): Promise<string> {
      // Only what was asked counts as a pre-mount: the tag and the filesystem type (a tmpfs or
      // an old 9p share that happens to carry the tag's name is not the virtio-fs share).
      const there = isMountPoint(storage.mountPoint) ? mountedSourceAt(storage.mountPoint) : undefined;
      if (there !== undefined && there.source === storage.source && there.fstype === storage.fstype) {
        // Not ours: nothing is recorded, so release never unmounts it.
        await applyFsGroup(storage);
        return storage.mountPoint;
      }
      return mountStorage(storage, ctx, { options: [...(storage.options ?? []), ...extraOptions(storage)] });
    },
  };
}
