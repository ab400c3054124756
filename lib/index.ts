// The public surface. Everything an agent uses is exported from here and nowhere else.
export {
  StorageError,
  isStorageError,
  type StorageErrorCode,
  type StorageErrorFields,
  type StorageErrorOf,
  type SandboxErrorFields,
  type SystemError,
} from './errors';
export { MountFlags, optionWords, parseMountOptions, type MountFlagName, type ParsedMountOptions } from './options';
export {
  mount,
  mountSync,
  umount,
  umountSync,
  isMountPoint,
  remount,
  newMountApiSupport,
  effectiveMountApi,
  type MountApi,
  type MountCallOptions,
  type MountSyncOptions,
  type NewMountApiSupport,
  type UmountOptions,
} from './mount';
export {
  normalizeStorage,
  type Storage,
  type StorageInput,
  type KataStorage,
  type KataFsGroup,
  type FsGroupInput,
  type PreparedStorage,
  type Placement,
  type FsGroup,
  type GroupChangePolicy,
} from './storage';
export {
  StorageHandlerRegistry,
  defaultRegistry,
  type StorageHandler,
  type StorageContext,
  type DeviceContext,
  type ReleaseContext,
  type ResumeContext,
  type StorageSteps,
} from './registry';
export { Sandbox, type SandboxOptions, type AddStoragesOptions, type StorageInfo } from './sandbox';
export {
  channels as storageChannels,
  tracing as storageTracing,
  type StorageChannel,
  type StorageTracingChannel,
  type TracingSubscribers,
  type MountEvent,
  type UmountEvent,
  type WaitEvent,
  type MkfsEvent,
  type WatchEvent,
  type RecoveryReport,
  type MountTrace,
  type UmountTrace,
  type RemountTrace,
  type WaitTrace,
  type MkfsTrace,
  type StorageTrace,
  type SandboxTrace,
} from './events';
export { StorageDrivers, BUILTIN_DRIVERS, LOCAL_KEEP_CONTENT, type BuiltinDriver } from './drivers';
export { WATCH_MAX_ENTRIES, WATCH_MAX_BYTES, WATCH_INTERVAL_MS } from './handlers/watcher';
export { MultiLayerMarkers, MULTI_LAYER_DRIVER, groupMultiLayer } from './handlers/multi-layer';
export { parseVerityInfo, verityTable, verityDeviceName, type DmVerityInfo } from './handlers/block/verity';
export { tmpfsSizeBytes, type EphemeralUpdate } from './handlers/ephemeral-update';
export {
  parsePciPath,
  parsePciPathFull,
  pciPathToSysfs,
  findPciBlockDevice,
  parseCcwDevice,
  findCcwBlockDevice,
  parseScsiAddress,
  findScsiBlockDevice,
  findMmioBlockDevice,
  findPmemDevice,
  deviceNumber,
  assertBlockDevice,
  ueventMonitorState,
  type PciSlot,
  type ParsedPciPath,
  type WaitOptions,
  type TargetFailure,
} from './devices';
