// ephemeral: tmpfs (memory-backed emptyDir, /dev/shm) with every option the runtime sent (Kata
// drops them), `fsgid=` applied after the mount (in the same native job); hugetlbfs with its
// pages allocated first.
import { StorageError } from '../errors';
import { native } from '../native';
import type { StorageContext, StorageHandler, StorageSteps } from '../handler';
import { optionValues, withoutOptions, type PreparedStorage, type Storage } from '../storage';
import { fsGidOption, mountStorage, octalModeOption, positiveIntegerOption } from './common';

function hugepages(storage: Storage): { pageSize: number; pages: number } {
  const pageSize = positiveIntegerOption(storage, 'pagesize');
  const size = positiveIntegerOption(storage, 'size');
  if (pageSize === undefined || size === undefined) {
    throw new StorageError('ERR_INVALID_MOUNT_OPTION', 'hugetlbfs storage needs pagesize= and size= options (bytes)', {
      value: (storage.options ?? []).join(','),
    });
  }
  if (pageSize % 1024 !== 0 || size % pageSize !== 0) {
    throw new StorageError(
      'ERR_INVALID_MOUNT_OPTION',
      `size=${size} must be a multiple of pagesize=${pageSize} (itself a multiple of 1024)`,
      {
        value: `pagesize=${pageSize},size=${size}`,
      },
    );
  }
  return { pageSize, pages: size / pageSize };
}

/** The driver's own options, parsed once by validate(). */
interface EphemeralOptions {
  gid: number | undefined;
  hugepages?: { pageSize: number; pages: number };
  /** The mount's options: the storage's without `fsgid=`, which is ours to apply, not tmpfs's. */
  options: string[];
}

export const ephemeralHandler: StorageHandler = {
  validate(storage: Storage): EphemeralOptions {
    // The words are split once, for every option this driver reads, and only when one of them
    // can be there (the common emptyDir request has neither).
    const list = storage.options ?? [];
    const read = storage.fstype === 'hugetlbfs' || list.some((o) => o.includes('fsgid=') || o.includes('mode='));
    if (!read) return { gid: undefined, options: [...list] };
    const values = optionValues(storage.options);
    const gid = fsGidOption(storage, values);
    const options =
      gid === undefined ? [...(storage.options ?? [])] : withoutOptions(storage.options, (w) => w.startsWith('fsgid='));
    if (storage.fstype === 'hugetlbfs') return { gid, hugepages: hugepages(storage), options };
    octalModeOption(storage, values);
    return { gid, options };
  },
  steps(storage: PreparedStorage): StorageSteps | undefined {
    const own = storage.driverData as EphemeralOptions;
    if (own.hugepages !== undefined) return undefined;
    const { source, fstype } = storage;
    return own.gid === undefined
      ? { source, fstype, options: own.options }
      : { source, fstype, options: own.options, fsgid: own.gid };
  },
  async create(storage: PreparedStorage, ctx: StorageContext): Promise<string> {
    const own = storage.driverData as EphemeralOptions;
    if (own.hugepages !== undefined) {
      const { pageSize, pages } = own.hugepages;
      const r = await native.ensureHugepages(ctx.sysfsRoot, pageSize / 1024, pages);
      if (r instanceof Error) throw r;
      if (r.allocated < pages) {
        throw new StorageError(
          'ERR_HUGEPAGES_UNAVAILABLE',
          `the kernel allocated ${r.allocated} of the ${pages} huge pages of ${pageSize / 1024} kB this storage needs`,
          { value: pages, allocated: r.allocated },
        );
      }
    }
    await mountStorage(
      storage,
      ctx,
      own.gid === undefined ? { options: own.options } : { options: own.options, fsgid: own.gid },
    );
    return storage.mountPoint;
  },
};
