// Kata's handleEphemeralStorage: an `ephemeral` mount (a memory-backed emptyDir) becomes a tmpfs
// the agent makes under the guest's ephemeral dir, and the OCI mount a bind of it.
import { posix } from 'node:path';
import type { Storage } from '../storage';
import { DRIVER_EPHEMERAL_TYPE, DRIVER_LOCAL_TYPE, LOCAL_KEEP_CONTENT } from '../drivers';
import { optionValueMap } from '../option-words';
import type { ResolvedSettings } from './settings';
import type { WorkingMount } from './working';
import { cleanPath } from './paths';

/** `fsgid=<gid>` when the host volume's group is not root: kubelet set an fsGroup on it. */
export function fsGidOptions(source: string, s: ResolvedSettings): string[] {
  const gid = s.volumes.get(cleanPath(source))?.gid;
  return gid !== undefined && gid !== 0 ? [`fsgid=${gid}`] : [];
}

/**
 * Points a mount at its emptyDir's guest storage: that storage's mount point, or for a subPath
 * view the directory inside it, which kubelet makes as `<volume>/<subPath>` on the host
 * (SafeMakeDir, with the volume's mode 0777) before it binds it: a `local` storage pushed after
 * the emptyDir's in the request, so it is made inside it. Its content is the emptyDir's, shared
 * with every container that mounts the emptyDir: the storage is `keep-content`, so releasing the
 * view removes the directory only when empty, and the data goes with the emptyDir, as in Kubernetes.
 */
export function useEmptyDir(
  emptyDirMountPoint: string,
  m: WorkingMount,
  s: ResolvedSettings,
  storages: Storage[],
): void {
  if (m.subPath === undefined) {
    m.source = emptyDirMountPoint;
    return;
  }
  const mountPoint = posix.join(emptyDirMountPoint, m.subPath);
  storages.push({
    driver: DRIVER_LOCAL_TYPE,
    source: 'local',
    fstype: 'local',
    options: ['mode=0777', ...fsGidOptions(m.source, s)],
    driverOptions: [LOCAL_KEEP_CONTENT],
    mountPoint,
  });
  m.source = mountPoint;
}

/**
 * Besides Kata's `fsgid=`, the host tmpfs's `size=` is kept (kubelet mounts a memory emptyDir with
 * size=<sizeLimit>): Kata's Go and Rust runtimes drop it, leaving the guest tmpfs at half the
 * guest's RAM and the pod's sizeLimit unenforced inside the VM. A subPath view (classifyEmptyDirs)
 * gets the same tmpfs storage as its emptyDir, the directory inside it, and that as its source.
 */
export function planEphemeral(mounts: WorkingMount[], s: ResolvedSettings): Storage[] {
  const storages: Storage[] = [];
  for (const m of mounts) {
    if (m.removed || m.type !== 'ephemeral') continue;
    const options = fsGidOptions(m.source, s);
    const size = optionValueMap(s.volumes.get(cleanPath(m.source))?.options).get('size');
    if (size !== undefined) options.push(`size=${size}`);
    const mountPoint = posix.join(s.guestEphemeralDir, posix.basename(cleanPath(m.source)));
    storages.push({ driver: DRIVER_EPHEMERAL_TYPE, source: 'tmpfs', fstype: 'tmpfs', options, mountPoint });
    useEmptyDir(mountPoint, m, s, storages);
    m.type = 'bind';
  }
  return storages;
}
