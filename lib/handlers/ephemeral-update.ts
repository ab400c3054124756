// Kata's UpdateEphemeralMounts: a Kubernetes emptyDir (medium: Memory) whose sizeLimit changed is
// remounted in place with its new options. Only tmpfs storages this sandbox holds through the
// `ephemeral` driver qualify, and never to a size below what is already in use.
import { statfs } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { StorageError, invalidArgType, type StorageErrorCode } from '../errors';
import { remount, type MountApi } from '../mount';
import { DRIVER_EPHEMERAL_TYPE } from '../drivers';
import { parseMountOptions } from '../options';
import { normalizeStorage, optionValues, withoutOptions, type Storage, type StorageInput } from '../storage';
import { fsGidOption, octalModeOption } from './common';

/** What the sandbox knows about a held mount point. */
export interface HeldEphemeral {
  driver: string;
  refcount: number;
  storage?: Storage;
}

export interface EphemeralUpdate {
  mountPoint: string;
  /** Which kernel API remounted it: fspick/fsconfig (`'new'`) or mount(2) MS_REMOUNT (`'legacy'`). */
  mountApi: 'new' | 'legacy';
}

export interface EphemeralUpdateHooks {
  held(path: string): HeldEphemeral | undefined;
  /** Runs `fn` under the mount point's lock, so a release cannot race the remount. */
  withLock<T>(path: string, fn: () => Promise<T>): Promise<T>;
  mountApi: MountApi | undefined;
}

const SUFFIX: Record<string, number> = {
  '': 1,
  k: 2 ** 10,
  m: 2 ** 20,
  g: 2 ** 30,
  t: 2 ** 40,
  p: 2 ** 50,
  e: 2 ** 60,
};

/** tmpfs `size=`: bytes with an optional k/m/g/t/p/e suffix, or a percentage of RAM; 0 is unlimited. */
export function tmpfsSizeBytes(value: string): number {
  const pct = /^(\d{1,3})%$/.exec(value);
  if (pct) return Math.floor((totalmem() * Number(pct[1])) / 100);
  const m = /^(\d{1,19})([kmgtpe]?)$/i.exec(value);
  if (!m) {
    throw new StorageError(
      'ERR_INVALID_MOUNT_OPTION',
      `mount option 'size=${value}' must be bytes with an optional k/m/g/t/p/e suffix, or a percentage`,
      {
        value: `size=${value}`,
      },
    );
  }
  return Number(m[1]) * SUFFIX[m[2]!.toLowerCase()]!;
}

function refuse(
  code: StorageErrorCode,
  s: Storage,
  message: string,
  extra: Record<string, unknown> = {},
): StorageError {
  return new StorageError(code, message, { value: s.mountPoint, ...extra });
}

/**
 * Checks every storage first (held, `ephemeral`, tmpfs, options parse, new size and inode count
 * not below what is in use), then remounts each in order under its mount point's lock. Nothing is
 * remounted when any storage is refused. Codes: `ERR_STORAGE_NOT_FOUND` (not held),
 * `ERR_INVALID_STORAGE` (`field: 'driver'` or `'fstype'`: not an ephemeral tmpfs),
 * `ERR_INVALID_MOUNT_OPTION`, `ERR_EPHEMERAL_SIZE_TOO_SMALL` (with `usedBytes`, `requestedBytes`,
 * or `usedInodes`, `requestedInodes`). A storage with no options is skipped, as in Kata.
 */
export async function updateEphemeralMounts(
  storages: readonly StorageInput[],
  hooks: EphemeralUpdateHooks,
): Promise<EphemeralUpdate[]> {
  if (!Array.isArray(storages)) throw invalidArgType('storages', 'an array', storages);
  const plan: { storage: Storage; options: string[] }[] = [];
  for (const x of storages) {
    const s = normalizeStorage(x);
    if (s.driver !== DRIVER_EPHEMERAL_TYPE) {
      throw new StorageError(
        'ERR_INVALID_STORAGE',
        `only ephemeral storages can be updated, not driver '${s.driver}'`,
        { value: s.driver, field: 'driver' },
      );
    }
    const held = hooks.held(s.mountPoint);
    if (held === undefined) {
      throw refuse('ERR_STORAGE_NOT_FOUND', s, `the sandbox holds no storage at ${s.mountPoint} to update`);
    }
    if (held.driver !== DRIVER_EPHEMERAL_TYPE) {
      throw new StorageError(
        'ERR_INVALID_STORAGE',
        `${s.mountPoint} is held by driver '${held.driver}', not ephemeral`,
        { value: held.driver, field: 'driver' },
      );
    }
    const fstype = held.storage?.fstype;
    if (fstype !== 'tmpfs' || (s.fstype !== '' && s.fstype !== 'tmpfs')) {
      throw new StorageError(
        'ERR_INVALID_STORAGE',
        `only tmpfs ephemeral storages can be resized (${s.mountPoint} is ${fstype})`,
        {
          value: s.mountPoint,
          field: 'fstype',
        },
      );
    }
    if ((s.options ?? []).length === 0) continue;
    fsGidOption(s);
    octalModeOption(s);
    // fsgid= was applied when the storage was created (Kata drops it here too).
    const options = withoutOptions(s.options, (w) => w.startsWith('fsgid='));
    parseMountOptions(options);
    plan.push({ storage: s, options });
  }
  for (const { storage: s, options } of plan) {
    const v = optionValues(options);
    const st = await statfs(s.mountPoint, { bigint: true });
    const size = v.get('size');
    if (size !== undefined) {
      const requestedBytes = tmpfsSizeBytes(size);
      const usedBytes = Number((st.blocks - st.bfree) * st.bsize);
      if (requestedBytes !== 0 && requestedBytes < usedBytes) {
        throw refuse(
          'ERR_EPHEMERAL_SIZE_TOO_SMALL',
          s,
          `size=${size} (${requestedBytes} bytes) is below the ${usedBytes} bytes in use at ${s.mountPoint}`,
          {
            usedBytes,
            requestedBytes,
          },
        );
      }
    }
    const inodes = v.get('nr_inodes');
    if (inodes !== undefined) {
      const requestedInodes = tmpfsSizeBytes(inodes);
      const usedInodes = Number(st.files - st.ffree);
      if (requestedInodes !== 0 && requestedInodes < usedInodes) {
        throw refuse(
          'ERR_EPHEMERAL_SIZE_TOO_SMALL',
          s,
          `nr_inodes=${inodes} is below the ${usedInodes} inodes in use at ${s.mountPoint}`,
          {
            usedInodes,
            requestedInodes,
          },
        );
      }
    }
  }
  const done: EphemeralUpdate[] = [];
  for (const { storage: s, options } of plan) {
    const api = await hooks.withLock(s.mountPoint, () => {
      if (hooks.held(s.mountPoint) === undefined) {
        throw refuse('ERR_STORAGE_NOT_FOUND', s, `the sandbox no longer holds ${s.mountPoint}`);
      }
      return remount(s.mountPoint, options, hooks.mountApi === undefined ? {} : { mountApi: hooks.mountApi });
    });
    done.push({ mountPoint: s.mountPoint, mountApi: api });
  }
  return done;
}
