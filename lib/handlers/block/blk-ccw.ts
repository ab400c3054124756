// blk-ccw: virtio-blk on s390x's channel subsystem, source '0.<ssid>.<devno>'.
import { findCcwBlockDevice, parseCcwDevice } from '../../devices';
import type { StorageHandler } from '../../handler';
import { blockHandler } from './steps';

export const blkCcwHandler: StorageHandler = blockHandler(
  (source) => void parseCcwDevice(source),
  (storage, opts) => findCcwBlockDevice(storage.source, opts),
);
