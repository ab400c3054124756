// The built-in storage drivers' names, declared once. A `Storage.driver` names its handler; the
// names and constant names are Kata's (kata-types device.rs `DRIVER_*_TYPE`, the agent's
// `DRIVER_MULTI_LAYER_EROFS`), so a request from Kata's runtime reaches the same handler here.
// Handlers, the runtime planner, the guest agent and the tests use these; docs/drivers.md
// describes each, and test/docs/driver-names.test.ts holds the docs to BUILTIN_DRIVERS.

/** virtio-fs shared directory: `source` is the tag, mounted as `virtiofs`. */
export const DRIVER_VIRTIOFS_TYPE = 'virtio-fs';
/** 9p shared directory over virtio (`trans=virtio`): `source` is the tag. */
export const DRIVER_9P_TYPE = '9p';
/** virtio-blk on PCI: `source` is a PCI path (`02/03`) or a `/dev` node. */
export const DRIVER_BLK_PCI_TYPE = 'blk';
/** virtio-blk on CCW (s390x): `source` is a CCW bus id (`0.0.0005`). */
export const DRIVER_BLK_CCW_TYPE = 'blk-ccw';
/** virtio-blk on virtio-mmio: `source` is the `/dev/vdX` node. */
export const DRIVER_BLK_MMIO_TYPE = 'mmioblk';
/** virtio-scsi: `source` is `target:lun`. */
export const DRIVER_SCSI_TYPE = 'scsi';
/** NVDIMM (pmem): `source` is the `/dev/pmemN` node. */
export const DRIVER_NVDIMM_TYPE = 'nvdimm';
/** tmpfs, shm or hugetlbfs made in the guest (emptyDir medium Memory, /dev/shm, huge pages). */
export const DRIVER_EPHEMERAL_TYPE = 'ephemeral';
/** A directory made in the guest (emptyDir on disk). */
export const DRIVER_LOCAL_TYPE = 'local';
/** An overlay, with its upper and work directories made in the guest. */
export const DRIVER_OVERLAYFS_TYPE = 'overlayfs';
/** A polled tmpfs copy of a shared-fs directory (configmaps, secrets, downward API). */
export const DRIVER_WATCHABLE_BIND_TYPE = 'watchable-bind';
/** Kata's multi-layer EROFS rootfs: an ext4 upper and EROFS lowers made into one overlay. */
export const DRIVER_MULTI_LAYER_EROFS = 'erofs.multi-layer';

/**
 * A `local` storage's driver option: the directory lies inside another storage (a subPath view
 * of an emptyDir) and its content is that storage's, so the last release removes the directory
 * only when it is empty, never what a container wrote there.
 */
export const LOCAL_KEEP_CONTENT = 'keep-content';

/**
 * Every built-in driver's name under its constant's name, for code outside the package (the guest
 * agent: `const { DRIVER_BLK_PCI_TYPE } = StorageDrivers`). Frozen.
 */
export const StorageDrivers = Object.freeze({
  DRIVER_VIRTIOFS_TYPE,
  DRIVER_9P_TYPE,
  DRIVER_BLK_PCI_TYPE,
  DRIVER_BLK_CCW_TYPE,
  DRIVER_BLK_MMIO_TYPE,
  DRIVER_SCSI_TYPE,
  DRIVER_NVDIMM_TYPE,
  DRIVER_EPHEMERAL_TYPE,
  DRIVER_LOCAL_TYPE,
  DRIVER_OVERLAYFS_TYPE,
  DRIVER_WATCHABLE_BIND_TYPE,
  DRIVER_MULTI_LAYER_EROFS,
});

/** The name of a built-in driver. */
export type BuiltinDriver = (typeof StorageDrivers)[keyof typeof StorageDrivers];

/** Every built-in driver, in the order `defaultRegistry()` registers them. Frozen. */
export const BUILTIN_DRIVERS: readonly BuiltinDriver[] = Object.freeze(Object.values(StorageDrivers));
