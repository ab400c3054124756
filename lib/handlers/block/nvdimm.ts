// nvdimm: a pmem disk (/dev/pmemN) under the ACPI NVDIMM root, usually mounted with dax.
import { findPmemDevice } from '../../devices';
import { DRIVER_NVDIMM_TYPE } from '../../drivers';
import type { StorageHandler } from '../../handler';
import { checkDevNode } from './dev-node';
import { blockHandler } from './steps';

export const nvdimmHandler: StorageHandler = blockHandler(
  (source) => checkDevNode(DRIVER_NVDIMM_TYPE, source),
  (storage, opts) => findPmemDevice(storage.source, opts),
);
