// The drivers whose source is the /dev node the runtime predicted (mmioblk, nvdimm): the path is
// checked for its shape here, and for being a real block device once it appears.
import { StorageError } from '../../errors';

/**
 * Refuses a `source` that is not an absolute device node path (`/dev/vdb`, `/dev/pmem0`).
 * @throws StorageError `ERR_INVALID_STORAGE` naming `source` and the `driver` that needs it.
 */
export function checkDevNode(driver: string, source: string): void {
  if (!source.startsWith('/') || source.endsWith('/')) {
    throw new StorageError('ERR_INVALID_STORAGE', `${driver} source must be a device node path such as /dev/vdb`, {
      value: source,
      field: 'source',
    });
  }
}
