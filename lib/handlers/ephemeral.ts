// ephemeral: tmpfs (memory-backed emptyDir, /dev/shm) with every option the runtime sent (Kata
// drops them), `fsgid=` applied after the mount (in the same native job); hugetlbfs with its
// pages allocated first.
import { StorageError } from '../errors';
import { native } from '../native';
import type { StorageContext, StorageHandler, StorageSteps } from '../handler';
import { optionValues, withoutOptions, type PreparedStorage, type Storage } from '../storage';
import { byteCountOption, fsGidOption, mountStorage, octalModeOption } from './common';

/**
 * The huge pages a hugetlbfs storage reserves: size= / pagesize=, both read exactly (a size past
 * 2^53, what a runtime plans from an effectively unlimited hugepage limit, is still a whole number
 * of pages; whether the kernel can give them all is for the reservation to say).
 */
function hugepages(storage: Storage): { pageSize: number; pages: number } {
  const pageSize = byteCountOption(storage, 'pagesize');
  const size = byteCountOption(storage, 'size');
  if (pageSize === undefined || size === undefined) {
    throw new StorageError('ERR_INVALID_MOUNT_OPTION', 'hugetlbfs storage needs pagesize= and size= options (bytes)', {
      value: (storage.options ?? []).join(','),
    });
  }
  if (pageSize % 1024n !== 0n || size % pageSize !== 0n) {
    throw new StorageError(
      'ERR_INVALID_MOUNT_OPTION',
      `size=${size} must be a multiple of pagesize=${pageSize} (itself a multiple of 1024)`,
      {
        value: `pagesize=${pageSize},size=${size}`,
      },
    );
  }
  const pages = size / pageSize;
  if (pages > BigInt(Number.MAX_SAFE_INTEGER) || pageSize > 2n ** 40n) {
    throw new StorageError(
      'ERR_INVALID_MOUNT_OPTION',
      `size=${size} asks for ${pages} huge pages of ${pageSize} bytes, more than any kernel can reserve; plan a size of the pages the container may use`,
      { value: `pagesize=${pageSize},size=${size}` },
    );
  }
  return { pageSize: Number(pageSize), pages: Number(pages) };
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
