// overlayfs: creates the upper and work directories it is asked for (beneath the allowed roots),
// and for Kata's rw-overlay option the per-container ones, then mounts.
import { join } from 'node:path';
import { StorageError } from '../errors';
import { optionWords, overlayPath } from '../options';
import type { StorageContext, StorageHandler, StorageSteps } from '../handler';
import {
  optionValues,
  placeMountPoint,
  withoutOptions,
  type Placement,
  type PreparedStorage,
  type Storage,
} from '../storage';
import { mountStorage } from './common';

const OVERLAY_RW = 'io.katacontainers.fs-opt.overlay-rw';
const CREATED = ['upperdir', 'workdir'] as const;

function wantsRw(storage: Storage): boolean {
  return optionWords(storage.options).includes(OVERLAY_RW);
}

function overlayOptions(storage: Storage, ctx: { allowedRoots: readonly string[]; containerId?: string }): string[] {
  const options = withoutOptions(storage.options, (w) => w === OVERLAY_RW);
  if (!wantsRw(storage)) return options;
  const id = ctx.containerId;
  if (id === undefined || id === '' || id.includes('/') || id === '.' || id === '..') {
    throw new StorageError('ERR_INVALID_STORAGE', `${OVERLAY_RW} needs a containerId usable as a directory name`, {
      value: id,
      field: 'containerId',
    });
  }
  const base = join(ctx.allowedRoots[0]!, id);
  // Escaped as overlayfs reads them, like any path given in the options.
  const esc = (p: string): string => p.replace(/[\\,:]/g, '\\$&');
  return [...options, `upperdir=${esc(join(base, 'upper'))}`, `workdir=${esc(join(base, 'work'))}`];
}

/**
 * The directories to create, as overlayfs will resolve them (its own unescaping of `\,` and
 * `\:`, so `up\,per` is the directory `up,per`), each checked against the allowed roots. A
 * refusal names the option, not the storage's mountPoint.
 */
function createdDirs(options: readonly string[], roots: readonly string[]): Placement[] {
  const v = optionValues(options);
  const dirs: Placement[] = [];
  for (const key of CREATED) {
    const raw = v.get(key);
    if (raw === undefined) continue;
    const dir = overlayPath(raw);
    try {
      dirs.push(placeMountPoint(dir, roots));
    } catch (err) {
      const e = err as StorageError;
      if (e.code !== 'ERR_INVALID_STORAGE') throw err;
      throw new StorageError(
        'ERR_INVALID_STORAGE',
        `overlay option ${key}=${raw}: ${e.message.replace(/^storage mountPoint /, '')}`,
        {
          value: `${key}=${raw}`,
          field: 'options',
          option: key,
          path: dir,
          cause: err,
        },
      );
    }
  }
  return dirs;
}

/** The overlay's options and the directories to create, as validate() worked them out. */
interface OverlayPlan {
  options: string[];
  dirs: Placement[];
}

export const overlayfsHandler: StorageHandler = {
  /** The overlay's options, with the directories it needs, worked out once. */
  validate(storage: Storage, ctx: { allowedRoots: readonly string[]; containerId?: string }): OverlayPlan {
    const options = overlayOptions(storage, ctx);
    return { options, dirs: createdDirs(options, ctx.allowedRoots) };
  },
  steps(storage: PreparedStorage): StorageSteps {
    const { options, dirs } = storage.driverData as OverlayPlan;
    return { source: storage.source, fstype: 'overlay', options, directories: dirs };
  },
  async create(storage: PreparedStorage, ctx: StorageContext): Promise<string> {
    const { options, dirs } = storage.driverData as OverlayPlan;
    for (const dir of dirs) await ctx.makeDirectory(join(dir.root, dir.rel));
    return mountStorage(storage, ctx, { fstype: 'overlay', options });
  },
};
