// Kata's handleLocalStorage: a `local` mount (a disk emptyDir made in the guest) becomes a
// directory the agent creates under the sandbox's rootfs in the shared dir, mode 0777 and the
// volume's group; the OCI mount's source is that directory (its type stays `local` and its
// rbind option makes it a bind, in Kata's Go and Rust runtimes alike).
import { posix } from 'node:path';
import type { Storage } from '../storage';
import { DRIVER_LOCAL_TYPE } from '../drivers';
import { fsGidOptions, useEmptyDir } from './ephemeral';
import type { ResolvedSettings } from './settings';
import type { WorkingMount } from './working';
import { cleanPath } from './paths';

/**
 * The storages of the `local` mounts, and each mount's source rewritten to its guest directory;
 * a subPath view (classifyEmptyDirs) gets its emptyDir's storage, the directory inside it, and
 * that directory as its source.
 */
export function planLocal(mounts: WorkingMount[], s: ResolvedSettings): Storage[] {
  const storages: Storage[] = [];
  for (const m of mounts) {
    if (m.removed || m.type !== 'local') continue;
    // Kata relies on the sandbox's first container having the sandbox's id (the pause container).
    const mountPoint = posix.join(
      s.guestSharedDir,
      s.sandboxId,
      s.rootfsSuffix,
      'local',
      posix.basename(cleanPath(m.source)),
    );
    storages.push({
      driver: DRIVER_LOCAL_TYPE,
      source: 'local',
      fstype: 'local',
      options: ['mode=0777', ...fsGidOptions(m.source, s)],
      mountPoint,
    });
    useEmptyDir(mountPoint, m, s, storages);
  }
  return storages;
}
