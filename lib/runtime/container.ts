// planContainer: Kata's createContainer (kata_agent.go) without the agent call: the container's
// storages in Kata's order, the spec as the agent gets it, and the host actions assumed.
import type { Storage } from '../storage';
import { attachedDevice, isBlockVolume, planBlockVolume } from './block';
import { classifyEmptyDirs, isSystemMount, type PlanWarning } from './classify';
import { planEphemeral } from './ephemeral';
import { planError } from './errors';
import type { HostAction } from './host-actions';
import { planHugepages } from './hugepages';
import { planLocal } from './local';
import { planRootfs } from './rootfs';
import { resolveSettings, type RuntimeSettings } from './settings';
import { planSharedDirMounts } from './share';
import { planShm } from './shm';
import { checkSpec, LAYER_OPTION, type OciMount, type OciSpec } from './spec';
import { mountPath, working } from './working';

export interface ContainerPlan {
  /** The storages to send with CreateContainer (Sandbox.addStorages with { containerId }). */
  storages: Storage[];
  /** A copy of the spec with root.path and mount sources as the guest sees them, ignored mounts removed. */
  spec: OciSpec;
  /** What the host must do first, in order (rollbackHostActions gives the undoing). */
  hostActions: HostAction[];
  /** What is planned as Kata plans it although the pod may mean otherwise (empty: nothing). */
  warnings: PlanWarning[];
}

/**
 * Plans one container of a sandbox from its OCI spec. Steps, as Kata's createContainer runs them:
 * emptyDir classification (katautils SetEphemeralStorageType), the rootfs
 * (ShareRootFilesystem), bind mounts through the shared filesystem (mountSharedDirMounts, with
 * block volumes attached), /dev/shm (handleShm), ephemeral tmpfs (handleEphemeralStorage),
 * hugepages (handleHugepages), local directories (handleLocalStorage), source rewrites
 * (replaceOCIMountSource), removals (removeIgnoredOCIMount: ignored sources and image layers),
 * then block volumes (handleBlkOCIMounts; layers first, other volumes last).
 *
 * Pure: reads only its arguments (the spec is not modified). The whole spec is checked before
 * anything is planned. Throws StorageError: ERR_INVALID_SPEC or ERR_BLOCK_DEVICE_NOT_ATTACHED
 * with `path` into the spec (`mounts[3].source`), ERR_INVALID_RUNTIME_SETTINGS with `path` into
 * the settings.
 */
export function planContainer(containerId: string, spec: unknown, settings?: RuntimeSettings): ContainerPlan {
  if (typeof containerId !== 'string' || !/^[\w][\w.-]*$/.test(containerId)) {
    throw planError(
      'ERR_INVALID_SPEC',
      'containerId',
      containerId,
      'must be a non-empty name of letters, digits, "_", "." and "-"',
    );
  }
  const s = resolveSettings(settings, containerId);
  const checked = checkSpec(spec);
  const mounts = checked.mounts.map(working);
  // Block volumes are known, and each has its device, before anything else is planned.
  const blockVolumes = new Set(
    mounts.filter((m) => !isSystemMount(m.source) && isBlockVolume(m, s)).map((m) => m.index),
  );
  for (const m of mounts) if (blockVolumes.has(m.index)) attachedDevice(m, s);

  const warnings = classifyEmptyDirs(mounts, s);
  const rootfs = planRootfs(containerId, checked.spec, s);
  const storages: Storage[] = [...rootfs.storages];
  const shared = planSharedDirMounts(containerId, mounts, blockVolumes, s);
  storages.push(...shared.storages);
  planShm(mounts, s);
  storages.push(...planEphemeral(mounts, s));
  storages.push(...planHugepages(mounts, checked.spec, s));
  storages.push(...planLocal(mounts, s));

  // handleBlkOCIMounts, after the shared-dir rewrites; mountSharedDirMounts attached the devices
  // in mount order among the shares, so the host actions keep that order.
  const hostActions: HostAction[] = [...rootfs.actions];
  const layers: Storage[] = [];
  for (const m of mounts) {
    hostActions.push(...shared.actions.filter((a) => a.for === mountPath(m)));
    if (!blockVolumes.has(m.index)) {
      if (m.options.includes(LAYER_OPTION)) m.removed = true;
      continue;
    }
    const b = planBlockVolume(m, s);
    hostActions.push(b.action);
    if (b.layer) {
      layers.push(b.storage);
      m.removed = true;
    } else {
      storages.push(b.storage);
    }
  }

  const out = structuredClone(checked.spec) as OciSpec;
  out.root = { ...out.root!, path: rootfs.guestPath };
  const original = (checked.spec.mounts ?? []) as OciMount[];
  out.mounts = mounts
    .filter((m) => !m.removed)
    .map((m) => {
      const o: OciMount = { ...structuredClone(original[m.index]!), type: m.type, source: m.source };
      if (m.options.length > 0) o.options = [...m.options];
      else delete o.options;
      return o;
    });
  return { storages: [...layers, ...storages], spec: out, hostActions, warnings };
}
