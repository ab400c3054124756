// The one driver list (Kata's STORAGE_HANDLERS in src/agent/src/storage/mod.rs): every driver
// Kata's agent registers except image guest-pull (needs the in-guest image service) and the
// confidential data hub's secure mounts (need the CDH and attestation), plus 9p.
import type { StorageHandler } from '../handler';
import { ninePHandler } from './9p';
import { blkHandler } from './blk';
import { blkCcwHandler } from './blk-ccw';
import { mmioblkHandler } from './mmioblk';
import { nvdimmHandler } from './nvdimm';
import { scsiHandler } from './scsi';
import { ephemeralHandler } from './ephemeral';
import { localHandler } from './local';
import { overlayfsHandler } from './overlayfs';
import { virtioFsHandler } from './virtio-fs';
import { watchableBindHandler } from './watchable-bind';
import { erofsMultiLayerHandler } from './erofs-multi-layer';
import { MULTI_LAYER_DRIVER } from '../multi-layer';

export const STORAGE_HANDLERS: ReadonlyArray<readonly [driver: string, handler: StorageHandler]> = [
  ['virtio-fs', virtioFsHandler],
  ['9p', ninePHandler],
  ['blk', blkHandler],
  ['blk-ccw', blkCcwHandler],
  ['mmioblk', mmioblkHandler],
  ['scsi', scsiHandler],
  ['nvdimm', nvdimmHandler],
  ['ephemeral', ephemeralHandler],
  ['local', localHandler],
  ['overlayfs', overlayfsHandler],
  ['watchable-bind', watchableBindHandler],
  [MULTI_LAYER_DRIVER, erofsMultiLayerHandler],
];
