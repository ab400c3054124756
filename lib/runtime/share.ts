// Kata's mountSharedDirMounts (container.go) with FilesystemShare.ShareFile (fs_share_linux.go):
// bind mounts of host files and directories reach the guest through the shared filesystem (or,
// with shared_fs=none, are copied in), and the OCI mount's source becomes the guest path.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { Storage } from '../storage';
import { DRIVER_WATCHABLE_BIND_TYPE } from '../drivers';
import { isHostDevice, isSystemMount, isWatchable, kubernetesVolume } from './classify';
import type { CopyAction, ShareAction } from './host-actions';
import type { ResolvedSettings } from './settings';
import { mountPath, type WorkingMount } from './working';
import { cleanPath } from './paths';
import { isReadOnlyMount } from './spec';

/** The host directory whose content the guest sees at guestSharedDir (Kata's getMountPath). */
export function hostMountsDir(s: ResolvedSettings): string {
  return posix.join(s.hostSharedDir, s.sandboxId, 'mounts');
}

/**
 * Kata's shareFileName: `<container>-<16 hex>-<basename of destination>`, or for an emptyDir copied
 * for the whole sandbox `sandbox-<16 hex>-<basename of source>`. Kata's hex is random; ours is a
 * hash of what names the mount, so a plan is a pure function of its input.
 */
function shareFileName(containerId: string, m: WorkingMount, sandboxScoped: boolean, sandboxId: string): string {
  const h = createHash('sha256');
  if (sandboxScoped) {
    h.update(`${sandboxId}\0${m.hostSource}`);
    return `sandbox-${h.digest('hex').slice(0, 16)}-${posix.basename(cleanPath(m.hostSource))}`;
  }
  h.update(`${containerId}\0${m.index}\0${m.hostSource}\0${m.destination}`);
  return `${containerId}-${h.digest('hex').slice(0, 16)}-${posix.basename(m.destination)}`;
}

export interface SharedDirPlan {
  storages: Storage[];
  actions: (ShareAction | CopyAction)[];
}

/**
 * For each bind mount that is not a system path, a block volume, /dev/shm or a host device: share
 * (or copy) it and point the OCI mount at the guest path. Secrets and configmaps get Kata's
 * `watchable-bind` storage (unless settings.watchableBind is false). A source that cannot be
 * copied (a socket, fifo or device node with shared_fs=none) is removed, as Kata ignores it.
 */
export function planSharedDirMounts(
  containerId: string,
  mounts: WorkingMount[],
  blockVolumes: ReadonlySet<number>,
  s: ResolvedSettings,
): SharedDirPlan {
  const plan: SharedDirPlan = { storages: [], actions: [] };
  const sharing = s.sharedFs !== 'none';
  for (const m of mounts) {
    if (m.removed || isSystemMount(m.source) || blockVolumes.has(m.index)) continue;
    if (m.type !== 'bind' || m.destination === '/dev/shm' || isHostDevice(m.source, s)) continue;
    const kind = s.volumes.get(cleanPath(m.source))?.kind;
    if (!sharing) {
      if (kind !== undefined && kind !== 'directory' && kind !== 'file') {
        m.removed = true; // removeIgnoredOCIMount
        continue;
      }
      const sandboxScoped = kubernetesVolume(m.source) === 'empty-dir';
      const guestPath = posix.join(s.guestSharedDir, shareFileName(containerId, m, sandboxScoped, s.sandboxId));
      plan.actions.push({ action: 'copy', source: m.source, guestPath, for: mountPath(m) });
      m.source = guestPath;
      continue;
    }
    const name = shareFileName(containerId, m, false, s.sandboxId);
    const guestPath = posix.join(s.guestSharedDir, name);
    plan.actions.push({
      action: 'share',
      source: m.source,
      hostPath: posix.join(hostMountsDir(s), name),
      guestPath,
      readonly: isReadOnlyMount(m.options),
      for: mountPath(m),
    });
    if (s.watchableBind && isWatchable(m.source)) {
      const watchable = posix.join(s.guestSharedDir, 'watchable', name);
      plan.storages.push({
        driver: DRIVER_WATCHABLE_BIND_TYPE,
        source: guestPath,
        fstype: 'bind',
        options: [...m.options],
        mountPoint: watchable,
      });
      m.source = watchable;
    } else {
      m.source = guestPath;
    }
  }
  return plan;
}
