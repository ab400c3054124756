// The one driver list, each handler by its name in lib/drivers.ts. Of Kata's STORAGE_HANDLERS
// (src/agent/src/storage/mod.rs) only image guest-pull (it needs the in-guest image service) and
// the confidential data hub's secure mounts (they need the CDH and attestation) are not here;
// docs/drivers.md says which of these drivers are Kata's.
import type { StorageHandler } from '../handler';
import {
  DRIVER_VIRTIOFS_TYPE,
  DRIVER_9P_TYPE,
  DRIVER_BLK_PCI_TYPE,
  DRIVER_BLK_CCW_TYPE,
  DRIVER_BLK_MMIO_TYPE,
  DRIVER_SCSI_TYPE,
  DRIVER_NVDIMM_TYPE,
  DRIVER_EPHEMERAL_TYPE,
  DRIVER_LOCAL_TYPE,
  DRIVER_OVERLAYFS_TYPE,
  DRIVER_WATCHABLE_BIND_TYPE,
  DRIVER_MULTI_LAYER_EROFS,
} from '../drivers';
import { ninePHandler } from './9p';
import { blkHandler } from './block/blk';
import { blkCcwHandler } from './block/blk-ccw';
import { mmioblkHandler } from './block/mmioblk';
import { nvdimmHandler } from './block/nvdimm';
import { scsiHandler } from './block/scsi';
import { ephemeralHandler } from './ephemeral';
import { localHandler } from './local';
import { overlayfsHandler } from './overlayfs';
import { virtioFsHandler } from './virtio-fs';
import { watchableBindHandler } from './watchable-bind';
import { erofsMultiLayerHandler } from './erofs-multi-layer';

export const STORAGE_HANDLERS: ReadonlyArray<readonly [driver: string, handler: StorageHandler]> = [
  [DRIVER_VIRTIOFS_TYPE, virtioFsHandler],
  [DRIVER_9P_TYPE, ninePHandler],
  [DRIVER_BLK_PCI_TYPE, blkHandler],
  [DRIVER_BLK_CCW_TYPE, blkCcwHandler],
  [DRIVER_BLK_MMIO_TYPE, mmioblkHandler],
  [DRIVER_SCSI_TYPE, scsiHandler],
  [DRIVER_NVDIMM_TYPE, nvdimmHandler],
  [DRIVER_EPHEMERAL_TYPE, ephemeralHandler],
  [DRIVER_LOCAL_TYPE, localHandler],
  [DRIVER_OVERLAYFS_TYPE, overlayfsHandler],
  [DRIVER_WATCHABLE_BIND_TYPE, watchableBindHandler],
  [DRIVER_MULTI_LAYER_EROFS, erofsMultiLayerHandler],
];
