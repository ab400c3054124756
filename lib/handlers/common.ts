// What most drivers share: create the mount point, mount, then apply fsGroup the way Kata does.
import { readFileSync } from 'node:fs';
import { StorageError, fromNative } from '../errors';
import { native } from '../native';
import { MountFlags, parseMountOptions } from '../options';
import type { StorageContext } from '../registry';
import { optionValues, ownershipSkipped, type Storage } from '../storage';

export interface MountPlan {
  source?: string;
  fstype?: string;
  options?: readonly string[];
  /** Bind target is a file (a device node bound onto it). */
  file?: boolean;
}

export async function mountStorage(storage: Storage, ctx: StorageContext, plan: MountPlan = {}): Promise<string> {
  await ctx.makeMountPoint({ file: plan.file === true });
  await ctx.mount(plan.source ?? storage.source, storage.mountPoint, plan.fstype ?? storage.fstype, plan.options ?? storage.options ?? []);
  await applyFsGroup(storage);
  return storage.mountPoint;
}

/**
 * Kata's set_ownership: recursive chgrp + rw/ro bits + setgid on dirs, OnRootMismatch short-cut.
 * On a mount made read-only it does nothing (Kubernetes' rule, `ownershipSkipped`; the mount
 * event says so); a directory that is not a mount (`local`) takes the ro bits as in Kata.
 */
export async function applyFsGroup(
  storage: Storage,
  { mounted = true }: { mounted?: boolean } = {},
): Promise<{ skipped: boolean | 'read-only'; changed: number } | undefined> {
  if (!storage.fsGroup) return undefined;
  const readOnly = (parseMountOptions(storage.options ?? []).flags & MountFlags.RDONLY) !== 0;
  if (mounted && ownershipSkipped(storage)) return { skipped: 'read-only', changed: 0 };
  const r = await native.applyFsGroup(
    storage.mountPoint,
    storage.fsGroup.groupId,
    readOnly,
    storage.fsGroup.groupChangePolicy === 'OnRootMismatch',
  );
  if ('errno' in r || 'code' in r) throw fromNative(r);
  return r;
}

function badOption(word: string, why: string): StorageError {
  return new StorageError('ERR_INVALID_MOUNT_OPTION', `mount option '${word}' ${why}`, { value: word });
}

/** `fsgid=` as a gid, or undefined; malformed values are refused. */
export function fsGidOption(storage: Storage): number | undefined {
  const v = optionValues(storage.options).get('fsgid');
  if (v === undefined) return undefined;
  if (!/^\d{1,10}$/.test(v) || Number(v) > 0xfffffffe) throw badOption(`fsgid=${v}`, 'must be a decimal group id');
  return Number(v);
}

/** `mode=` read as octal (Kata's from_str_radix(mode, 8)), or undefined. */
export function octalModeOption(storage: Storage): number | undefined {
  const v = optionValues(storage.options).get('mode');
  if (v === undefined) return undefined;
  if (!/^0?[0-7]{1,4}$/.test(v)) throw badOption(`mode=${v}`, 'must be an octal mode (at most 07777)');
  return parseInt(v, 8);
}

/** A positive decimal integer option (bytes), or undefined. */
export function positiveIntegerOption(storage: Storage, name: string): number | undefined {
  const v = optionValues(storage.options).get(name);
  if (v === undefined) return undefined;
  if (!/^\d{1,16}$/.test(v) || Number(v) <= 0 || !Number.isSafeInteger(Number(v))) {
    throw badOption(`${name}=${v}`, 'must be a positive integer number of bytes');
  }
  return Number(v);
}

/** The source of the mount at `path`, if `path` is a mount point (last entry wins: the top one). */
export function mountedSourceAt(path: string): { source: string; fstype: string } | undefined {
  let found: { source: string; fstype: string } | undefined;
  const esc = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    if (esc(left[4] ?? '') !== path) continue;
    const right = line.slice(sep + 3).split(' ');
    found = { fstype: right[0] ?? '', source: esc(right[1] ?? '') };
  }
  return found;
}
