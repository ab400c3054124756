// What a mount source is, from its path and what the runtime found there: Kata's mount.go
// predicates (isSystemMount, isHostDevice, the Kubernetes volume kinds) and katautils'
// SetEphemeralStorageType, which turns kubelet's emptyDir binds into Kata's `ephemeral` and
// `local` mount types before the container is created.
import { cleanPath } from './paths';
import type { ResolvedSettings } from './settings';
import { mountPath, type WorkingMount } from './working';

/**
 * Something the plan does as Kata does although it may not be what the pod means; the plan is
 * still made. `path` is where in the spec (`mounts[2].source`), `value` the value there.
 */
export interface PlanWarning {
  /**
   * `SUBPATH_SHARED_FROM_HOST`: a kubelet subPath source is shared from the host as Kata shares
   * it. If its volume is an emptyDir the guest makes (memory, or disk without
   * disableGuestEmptyDir), this container sees the host's directory while the containers that
   * mount the emptyDir whole see the guest's: Kata's documented limitation (Limitations.md,
   * "Kubernetes volumeMounts.subPaths"). `volumes[source].subPathOf` and `subPath` plan it inside
   * the emptyDir's guest storage instead.
   */
  code: 'SUBPATH_SHARED_FROM_HOST';
  path: string;
  value: string;
  message: string;
}

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
 * kubelet's subPath bind (pkg/volume/util/subpath: `<pod dir>/volume-subpaths/<volume>/<container>/<n>`,
 * n the volumeMount's index), under whatever kubelet root dir.
 */
export function isKubeletSubPath(source: string): boolean {
  const parts = cleanPath(source).split('/');
  return parts.length >= 6 && parts[parts.length - 4] === 'volume-subpaths' && /^\d+$/.test(parts.at(-1)!);
}

/**
 * katautils.SetEphemeralStorageType: an emptyDir on tmpfs (medium: Memory) becomes `ephemeral`
 * (a tmpfs made in the guest); one on hugetlbfs becomes `local` (handleHugepages takes it); a
 * disk emptyDir becomes `local` (a directory in the guest) unless disable_guest_empty_dir.
 *
 * Beyond Kata: a subPath source whose `volumes` entry names its emptyDir (`subPathOf`, `subPath`)
 * is classified as that emptyDir, with `subPath` kept for the ephemeral and local steps, so the
 * view lies inside the one guest storage every container of the pod shares. A kubelet subPath
 * source without them, or of a hugetlbfs emptyDir, is left to be shared from the host as Kata
 * does, and the returned warnings say so.
 */
export function classifyEmptyDirs(mounts: WorkingMount[], settings: ResolvedSettings): PlanWarning[] {
  const warnings: PlanWarning[] = [];
  const sharedFromHost = (m: WorkingMount, why: string): void => {
    warnings.push({
      code: 'SUBPATH_SHARED_FROM_HOST',
      path: mountPath(m, 'source'),
      value: m.source,
      message:
        `${mountPath(m, 'source')}: ${m.source} is a kubelet subPath view ${why}; it is shared from the host as ` +
        "Kata does, so if its volume is an emptyDir the guest makes, this container sees the host's directory " +
        "and the containers that mount the emptyDir whole see the guest's",
    });
  };
  for (const m of mounts) {
    const view = settings.volumes.get(cleanPath(m.source));
    if (view?.subPathOf !== undefined && view.subPath !== undefined) {
      if (kubernetesVolume(view.subPathOf) !== 'empty-dir') continue;
      const fstype = hostFstype(view.subPathOf, settings);
      if (fstype === 'hugetlbfs') {
        sharedFromHost(m, `of a hugetlbfs emptyDir (${view.subPathOf}), which is planned in the guest only whole`);
        continue;
      }
      if (fstype !== 'tmpfs' && settings.disableGuestEmptyDir) continue;
      m.type = fstype === 'tmpfs' ? 'ephemeral' : 'local';
      m.source = view.subPathOf;
      m.subPath = view.subPath;
      continue;
    }
    if (isKubeletSubPath(m.source)) {
      sharedFromHost(
        m,
        `whose volume the settings do not name (volumes[source].subPathOf and subPath plan it inside the emptyDir's guest storage)`,
      );
      continue;
    }
    if (kubernetesVolume(m.source) !== 'empty-dir') continue;
    const fstype = hostFstype(m.source, settings);
    if (fstype === 'tmpfs') m.type = 'ephemeral';
    else if (fstype === 'hugetlbfs') m.type = 'local';
    else if (!settings.disableGuestEmptyDir) m.type = 'local';
  }
  return warnings;
}

/** mount.go isWatchableMount: secrets and configmaps (Kata also caps them at 8 files). */
export function isWatchable(source: string): boolean {
  const k = kubernetesVolume(source);
  return k === 'secret' || k === 'configmap';
}
