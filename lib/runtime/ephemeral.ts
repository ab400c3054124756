// Kata's handleEphemeralStorage: an `ephemeral` mount (a memory-backed emptyDir) becomes a tmpfs
// the agent makes under the guest's ephemeral dir, and the OCI mount a bind of it.
import { posix } from 'node:path';
import type { Storage } from '../storage';
import { optionValues } from '../option-words';
import type { ResolvedSettings } from './settings';
import type { WorkingMount } from './working';
import { cleanPath } from './paths';

/** `fsgid=<gid>` when the host volume's group is not root: kubelet set an fsGroup on it. */
export function fsGidOptions(source: string, s: ResolvedSettings): string[] {
  const gid = s.volumes.get(cleanPath(source))?.gid;
  return gid !== undefined && gid !== 0 ? [`fsgid=${gid}`] : [];
}

/**
 * Besides Kata's `fsgid=`, the host tmpfs's `size=` is kept (kubelet mounts a memory emptyDir with
 * size=<sizeLimit>): Kata's Go and Rust runtimes drop it, leaving the guest tmpfs at half the
 * guest's RAM and the pod's sizeLimit unenforced inside the VM.
 */
export function planEphemeral(mounts: WorkingMount[], s: ResolvedSettings): Storage[] {
  const storages: Storage[] = [];
  for (const m of mounts) {
    if (m.removed || m.type !== 'ephemeral') continue;
    const options = fsGidOptions(m.source, s);
    const size = optionValues(s.volumes.get(cleanPath(m.source))?.options).get('size');
    if (size !== undefined) options.push(`size=${size}`);
    const mountPoint = posix.join(s.guestEphemeralDir, posix.basename(cleanPath(m.source)));
    storages.push({ driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options, mountPoint });
    m.source = mountPoint;
    m.type = 'bind';
  }
  return storages;
}
