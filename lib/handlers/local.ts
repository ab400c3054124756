// local: a plain directory (a disk-backed emptyDir), created with octal `mode=` and `fsgid=`, no
// mount. It goes with its last reference, but never by deleting into a mount below it.
import { chmodSync, chownSync } from 'node:fs';
import { native } from '../native';
import type { ReleaseContext, StorageContext, StorageHandler } from '../handler';
import type { PreparedStorage, Storage } from '../storage';
import { applyFsGroup, fsGidOption, octalModeOption } from './common';

const S_ISGID = 0o2000;

export const localHandler: StorageHandler = {
  /** The driver's own options, parsed once: `fsgid=` and octal `mode=`. */
  validate(storage: Storage): { gid: number | undefined; mode: number | undefined } {
    return { gid: fsGidOption(storage), mode: octalModeOption(storage) };
  },
  async create(storage: PreparedStorage, ctx: StorageContext): Promise<string> {
    const { gid, mode } = storage.driverData as { gid: number | undefined; mode: number | undefined };
    await ctx.makeMountPoint();
    if (gid !== undefined) chownSync(storage.mountPoint, -1, gid);
    if (mode !== undefined) chmodSync(storage.mountPoint, mode | (gid !== undefined ? S_ISGID : 0));
    await applyFsGroup(storage, { mounted: false });
    return storage.mountPoint;
  },
  async release(path: string, ctx: ReleaseContext): Promise<void> {
    if (!ctx.createdMountPoint) return;
    const e = await native.removeTree(path);
    if (e) throw e;
  },
};
