// scsi: virtio-scsi disk at 'target:lun'; hosts are asked to scan for it, then it is waited for.
import { findScsiBlockDevice, parseScsiAddress } from '../../devices';
import type { StorageHandler } from '../../handler';
import { blockHandler } from './steps';

export const scsiHandler: StorageHandler = blockHandler(
  (source) => void parseScsiAddress(source),
  (storage, opts) => findScsiBlockDevice(storage.source, opts),
);
