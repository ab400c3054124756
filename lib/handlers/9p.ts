// 9p over virtio: the tag is mounted with trans=virtio unless the runtime chose a transport.
import type { StorageHandler } from '../handler';
import { optionValues } from '../storage';
import { sharedFsHandler } from './shared-fs';

export const ninePHandler: StorageHandler = sharedFsHandler((s) =>
  optionValues(s.options).has('trans') ? [] : ['trans=virtio'],
);
