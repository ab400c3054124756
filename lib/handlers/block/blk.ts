// blk: virtio-blk over PCI. The source is a PCI path ('02/03') to resolve and wait for, or a
// /dev node the runtime already knows (checked with S_ISBLK, never a bitmask).
import { findPciBlockDevice, parsePciPathFull } from '../../devices';
import type { StorageHandler } from '../../handler';
import { blockHandler } from './steps';

const isNode = (source: string): boolean => source.startsWith('/');

export const blkHandler: StorageHandler = blockHandler(
  (source) => {
    if (!isNode(source)) parsePciPathFull(source);
  },
  async (storage, opts) => (isNode(storage.source) ? storage.source : findPciBlockDevice(storage.source, opts)),
);
