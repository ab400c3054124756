// virtio-fs and 9p: the source is a tag the hypervisor exposes. An agent started with the shared
// filesystem already mounted (Kata's guest pre-mount) must accept that mount, not fail on it: the
// job accepts a mount of the tag and type asked for already at the mount point (StorageSteps
// premount, native/core/storage_steps Premounted).
import type { StorageContext, StorageHandler, StorageSteps } from '../handler';
import type { PreparedStorage, Storage } from '../storage';
import { mountStorage } from './common';

export function sharedFsHandler(extraOptions: (storage: Storage) => string[]): StorageHandler {
  const options = (storage: Storage): string[] => [...(storage.options ?? []), ...extraOptions(storage)];
  return {
    steps(storage: PreparedStorage): StorageSteps {
      return { source: storage.source, fstype: storage.fstype, options: options(storage), premount: true };
    },
    create(storage: PreparedStorage, ctx: StorageContext): Promise<string> {
      return mountStorage(storage, ctx, { options: options(storage), premount: true });
    },
  };
}
