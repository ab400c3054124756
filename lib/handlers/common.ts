// What most drivers share: the mount point, the mount and the storage's fsGroup in one native job.
import { StorageError } from '../errors';
import type { StorageContext } from '../handler';
import { readMountinfo } from '../mountinfo';
import { optionValues, type PreparedStorage, type Storage } from '../storage';

export interface MountPlan {
  source?: string;
  fstype?: string;
  options?: readonly string[];
  /** Bind target is a file (a device node bound onto it). */
  file?: boolean;
  /** ephemeral's `fsgid=`: the mount root's group and setgid bit, after fsGroup. */
  fsgid?: number;
  /** A mount of this source and fstype already there is accepted (StorageSteps.premount). */
  premount?: boolean;
  /** Nothing mounted: a `local` directory with its mode (StorageSteps.directory). */
  directory?: { mode?: number };
}

export async function mountStorage(
  storage: PreparedStorage,
  ctx: StorageContext,
  plan: MountPlan = {},
): Promise<string> {
  // The mount point, the mount and the storage's fsGroup (plus `fsgid`) in one job.
  await ctx.mountAtMountPoint(
    plan.source ?? storage.source,
    plan.fstype ?? storage.fstype,
    plan.options ?? storage.options ?? [],
    {
      file: plan.file === true,
      premount: plan.premount === true,
      ...(plan.directory === undefined ? {} : { directory: plan.directory }),
      ...(plan.fsgid === undefined ? {} : { fsgid: plan.fsgid }),
    },
  );
  return storage.mountPoint;
}

/**
 * Why the group ownership a storage asks for (`fsGroup`, ephemeral `fsgid=`) is not applied, or
 * undefined when it is: a volume whose mount is read-only (per-mount or superblock `ro` in
 * /proc/self/mountinfo, whatever the options said) is left as it is, as Kubernetes does; a chown
 * there could only fail with EROFS. A writable mount asked for with `ro` keeps Kata's ro bits.
 */
export function ownershipSkipped(storage: Storage): 'read-only' | undefined {
  return mountedSourceAt(storage.mountPoint)?.readOnly === true ? 'read-only' : undefined;
}

function badOption(word: string, why: string): StorageError {
  return new StorageError('ERR_INVALID_MOUNT_OPTION', `mount option '${word}' ${why}`, { value: word });
}

/** `fsgid=` as a gid, or undefined; malformed values are refused. */
export function fsGidOption(storage: Storage, values = optionValues(storage.options)): number | undefined {
  const v = values.get('fsgid');
  if (v === undefined) return undefined;
  if (!/^\d{1,10}$/.test(v) || Number(v) > 0xfffffffe) throw badOption(`fsgid=${v}`, 'must be a decimal group id');
  return Number(v);
}

/** `mode=` read as octal (Kata's from_str_radix(mode, 8)), or undefined. */
export function octalModeOption(storage: Storage, values = optionValues(storage.options)): number | undefined {
  const v = values.get('mode');
  if (v === undefined) return undefined;
  if (!/^0?[0-7]{1,4}$/.test(v)) throw badOption(`mode=${v}`, 'must be an octal mode (at most 07777)');
  return parseInt(v, 8);
}

/**
 * A positive decimal integer option (bytes) read exactly as the kernel's unsigned long long, so a
 * byte count past 2^53 (a runtime's "no limit" hugepage limit) is not misread; or undefined.
 */
export function byteCountOption(storage: Storage, name: string): bigint | undefined {
  const v = optionValues(storage.options).get(name);
  if (v === undefined) return undefined;
  const n = /^\d{1,20}$/.test(v) ? BigInt(v) : -1n;
  if (n <= 0n || n > U64_MAX) {
    throw badOption(`${name}=${v}`, `must be a positive decimal number of bytes, at most ${U64_MAX} (a uint64)`);
  }
  return n;
}

const U64_MAX = 2n ** 64n - 1n;

/** The mount at `path`, if `path` is a mount point (last entry wins: the top one). */
export function mountedSourceAt(path: string): { source: string; fstype: string; readOnly: boolean } | undefined {
  let found: { source: string; fstype: string; readOnly: boolean } | undefined;
  for (const m of readMountinfo()) {
    if (m.mountPoint !== path) continue;
    found = {
      fstype: m.fstype,
      source: m.source,
      readOnly: m.mountOptions.includes('ro') || m.superOptions.includes('ro'),
    };
  }
  return found;
}
