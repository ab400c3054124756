// mmioblk: virtio-blk over MMIO (Firecracker). Only the predicted /dev name is known: wait for it.
import { findMmioBlockDevice } from '../../devices';
import { DRIVER_BLK_MMIO_TYPE } from '../../drivers';
import type { StorageHandler } from '../../handler';
import { checkDevNode } from './dev-node';
import { blockHandler } from './steps';

export const mmioblkHandler: StorageHandler = blockHandler(
  (source) => checkDevNode(DRIVER_BLK_MMIO_TYPE, source),
  (storage, opts) => findMmioBlockDevice(storage.source, opts),
);
