// virtio-fs: mount the tag with fstype virtiofs; options such as `dax` are passed as data.
import type { StorageHandler } from '../handler';
import { sharedFsHandler } from './shared-fs';

export const virtioFsHandler: StorageHandler = sharedFsHandler(() => []);
