// kata-storage/runtime: the Kata runtime's half of the mount flow, as pure functions. From a
// sandbox's settings and a container's OCI spec to the Storage requests the agent side (this
// package's Sandbox) takes, the spec as the guest sees it, and the host actions assumed.
export { planSandbox, virtioFsUsesDax, SHARED_FS_TAG } from './sandbox';
export { planContainer, type ContainerPlan } from './container';
export { type PlanWarning } from './classify';
export {
  rollbackHostActions,
  type HostAction,
  type ShareAction,
  type CopyAction,
  type AttachBlockDeviceAction,
  type UndoAction,
} from './host-actions';
export {
  resolveSettings,
  DEFAULT_SHM_SIZE,
  KATA_GUEST_SANDBOX_DIR,
  KATA_GUEST_SHARED_DIR,
  KATA_HOST_SHARED_DIR,
  type RuntimeSettings,
  type ResolvedSettings,
  type SharedFs,
  type VirtioFsCache,
  type BlockDeviceDriver,
  type AttachedBlockDevice,
  type HostVolume,
} from './settings';
export {
  KNOWN_MOUNT_TYPES,
  LAYER_OPTION,
  FILE_BLOCK_DEVICE_OPTION,
  type OciSpec,
  type OciMount,
  type OciHugepageLimit,
} from './spec';
export { type PlanError, type PlanErrorCode } from './errors';
export type { Storage, FsGroup } from '../storage';
