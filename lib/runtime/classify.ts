// What a mount source is, from its path and what the runtime found there: Kata's mount.go
// predicates (isSystemMount, isHostDevice, the Kubernetes volume kinds) and katautils'
// SetEphemeralStorageType, which turns kubelet's emptyDir binds into Kata's `ephemeral` and
// `local` mount types before the container is created.
import { cleanPath } from './paths';
import type { ResolvedSettings } from './settings';
import type { WorkingMount } from './working';

/** mount.go systemMountPrefixes: host paths never shared into the guest. */
const SYSTEM_MOUNT_PREFIXES = ['/proc', '/sys'];

export function isSystemMount(source: string): boolean {
  const p = cleanPath(source);
  return SYSTEM_MOUNT_PREFIXES.some((s) => p === s || p.startsWith(`${s}/`));
}

/**
 * mount.go isHostDevice: `/dev` itself and anything below it that is not a regular file. Kata
 * stats the path; here the runtime's `volumes[source].kind` says so, and a path under /dev with no
 * kind given counts as a device (what it nearly always is).
 */
export function isHostDevice(source: string, settings: ResolvedSettings): boolean {
  const p = cleanPath(source);
  if (p === '/dev') return true;
  if (!p.startsWith('/dev/')) return false;
  return settings.volumes.get(p)?.kind !== 'file';
}

export type KubernetesVolume = 'empty-dir' | 'configmap' | 'secret';

/** mount.go checkKubernetesVolume: kubelet's `.../volumes/kubernetes.io~<kind>/<name>` layout. */
export function kubernetesVolume(source: string): KubernetesVolume | undefined {
  const parts = source.split('/');
  if (parts.length < 2) return undefined;
  const kind = parts[parts.length - 2];
  switch (kind) {
    case 'kubernetes.io~empty-dir':
      return 'empty-dir';
    case 'kubernetes.io~configmap':
      return 'configmap';
    case 'kubernetes.io~secret':
      return 'secret';
    default:
      return undefined;
  }
}

/** The filesystem the host has at a volume source (mountinfo), as the runtime reported it. */
function hostFstype(source: string, settings: ResolvedSettings): string | undefined {
  return settings.volumes.get(cleanPath(source))?.fstype;
}

/**
 * katautils.SetEphemeralStorageType: an emptyDir on tmpfs (medium: Memory) becomes `ephemeral`
 * (a tmpfs made in the guest); one on hugetlbfs becomes `local` (handleHugepages takes it); a
 * disk emptyDir becomes `local` (a directory in the guest) unless disable_guest_empty_dir.
 */
export function classifyEmptyDirs(mounts: WorkingMount[], settings: ResolvedSettings): void {
  for (const m of mounts) {
    if (kubernetesVolume(m.source) !== 'empty-dir') continue;
    const fstype = hostFstype(m.source, settings);
    if (fstype === 'tmpfs') m.type = 'ephemeral';
    else if (fstype === 'hugetlbfs') m.type = 'local';
    else if (!settings.disableGuestEmptyDir) m.type = 'local';
  }
}

/** mount.go isWatchableMount: secrets and configmaps (Kata also caps them at 8 files). */
export function isWatchable(source: string): boolean {
  const k = kubernetesVolume(source);
  return k === 'secret' || k === 'configmap';
}
