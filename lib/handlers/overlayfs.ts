// overlayfs: creates the upper and work directories it is asked for (beneath the allowed roots),
// and for Kata's rw-overlay option the per-container ones, then mounts.
import { join } from 'node:path';
import { StorageError } from '../errors';
import type { StorageContext, StorageHandler } from '../registry';
import { optionValues, placeMountPoint, withoutOptions, type Storage } from '../storage';
import { mountStorage } from './common';

const OVERLAY_RW = 'io.katacontainers.fs-opt.overlay-rw';

function wantsRw(storage: Storage): boolean {
  return (storage.options ?? []).some((o) => o.split(',').includes(OVERLAY_RW));
}

function overlayOptions(storage: Storage, ctx: { allowedRoots: readonly string[]; containerId?: string }): string[] {
  const options = withoutOptions(storage.options, (w) => w === OVERLAY_RW);
  if (!wantsRw(storage)) return options;
  const id = ctx.containerId;
  if (id === undefined || id === '' || id.includes('/') || id === '.' || id === '..') {
    throw new StorageError('ERR_INVALID_STORAGE', `${OVERLAY_RW} needs a containerId usable as a directory name`, { value: id, field: 'containerId' });
  }
  const base = join(ctx.allowedRoots[0]!, id);
  return [...options, `upperdir=${join(base, 'upper')}`, `workdir=${join(base, 'work')}`];
}

export const overlayfsHandler: StorageHandler = {
  validate(storage: Storage, ctx: { allowedRoots: readonly string[]; containerId?: string }): void {
    const v = optionValues(overlayOptions(storage, ctx));
    for (const key of ['upperdir', 'workdir']) {
      const dir = v.get(key);
      if (dir !== undefined) placeMountPoint(dir, ctx.allowedRoots);
    }
  },
  async create(storage: Storage, ctx: StorageContext): Promise<string> {
    const options = overlayOptions(storage, ctx);
    const v = optionValues(options);
    for (const key of ['upperdir', 'workdir']) {
      const dir = v.get(key);
      if (dir !== undefined) await ctx.makeDirectory(dir);
    }
    return mountStorage(storage, ctx, { fstype: 'overlay', options });
  },
};
