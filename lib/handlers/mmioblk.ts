// mmioblk: virtio-blk over MMIO (Firecracker). Only the predicted /dev name is known: wait for it.
import { StorageError } from '../errors';
import { findMmioBlockDevice } from '../devices';
import { DRIVER_BLK_MMIO_TYPE } from '../drivers';
import type { StorageHandler } from '../handler';
import { blockHandler } from './block';

export function checkDevNode(driver: string, source: string): void {
  if (!source.startsWith('/') || source.endsWith('/')) {
    throw new StorageError('ERR_INVALID_STORAGE', `${driver} source must be a device node path such as /dev/vdb`, {
      value: source,
      field: 'source',
    });
  }
}

export const mmioblkHandler: StorageHandler = blockHandler(
  (source) => checkDevNode(DRIVER_BLK_MMIO_TYPE, source),
  (storage, opts) => findMmioBlockDevice(storage.source, opts),
);
