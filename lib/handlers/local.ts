// local: a plain directory (a disk-backed emptyDir), created with octal `mode=` and `fsgid=`, no
// mount. It goes with its last reference, but never by deleting into a mount below it; with the
// keep-content driver option only an empty directory goes (its content belongs to the storage it
// lies in).
import { native } from '../native';
import type { ReleaseContext, StorageContext, StorageHandler, StorageSteps } from '../handler';
import type { PreparedStorage, Storage } from '../storage';
import { fsGidOption, mountStorage, octalModeOption } from './common';
import { LOCAL_KEEP_CONTENT } from '../drivers';
import { StorageError } from '../errors';

/** Kata's local storage as steps: a directory with its group (fsgid=) and mode, no mount. */
function localDirectory(storage: PreparedStorage): {
  fstype: string;
  options: string[];
  fsgid?: number;
  directory: { mode?: number };
} {
  const { gid, mode } = storage.driverData as { gid: number | undefined; mode: number | undefined };
  return {
    fstype: '',
    options: [],
    ...(gid === undefined ? {} : { fsgid: gid }),
    directory: mode === undefined ? {} : { mode },
  };
}

export const localHandler: StorageHandler = {
  /** The driver's own options, parsed once: `fsgid=` and octal `mode=`; the one driver option. */
  validate(storage: Storage): { gid: number | undefined; mode: number | undefined } {
    for (const o of storage.driverOptions ?? []) {
      if (o !== LOCAL_KEEP_CONTENT) {
        throw new StorageError(
          'ERR_INVALID_MOUNT_OPTION',
          `local storage driver option '${o}' is not known; the one it takes is '${LOCAL_KEEP_CONTENT}'`,
          { value: o },
        );
      }
    }
    return { gid: fsGidOption(storage), mode: octalModeOption(storage) };
  },
  steps(storage: PreparedStorage): StorageSteps {
    return { source: storage.source, ...localDirectory(storage) };
  },
  create(storage: PreparedStorage, ctx: StorageContext): Promise<string> {
    // The same native steps as the job's (LocalOwnership), for a request made storage by storage.
    return mountStorage(storage, ctx, localDirectory(storage));
  },
  async release(path: string, ctx: ReleaseContext): Promise<void> {
    // With keep-content the directory is among the created paths the release removes only when
    // empty (rmdir), as any mount point directory is.
    if (!ctx.createdMountPoint || ctx.storage.driverOptions?.includes(LOCAL_KEEP_CONTENT)) return;
    const e = await native.removeTree(path);
    if (e) throw e;
  },
};
