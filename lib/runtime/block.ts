// Block volumes: a mount whose source the runtime attached as a block device becomes a Storage of
// the agent's block driver (Kata's handleBlockVolume / handleDeviceBlockVolume /
// handleBlkOCIMounts), mounted once per device under the guest's storage dir, and the OCI mount
// becomes a bind of that path.
import { posix } from 'node:path';
import type { Storage } from '../storage';
import {
  DRIVER_BLK_CCW_TYPE,
  DRIVER_BLK_MMIO_TYPE,
  DRIVER_BLK_PCI_TYPE,
  DRIVER_NVDIMM_TYPE,
  DRIVER_SCSI_TYPE,
} from '../drivers';
import { at, planError } from './errors';
import type { AttachBlockDeviceAction } from './host-actions';
import type { AttachedBlockDevice, ResolvedSettings } from './settings';
import { FILE_BLOCK_DEVICE_OPTION, isReadOnlyMount, LAYER_OPTION } from './spec';
import { mountPath, type WorkingMount } from './working';
import { cleanPath } from './paths';

/** Kata's encryptionKeyDriverOption and direct-volume BlockVolumeCreateFsDriverKey. */
const ENCRYPTION_KEY_OPTION = 'encryption_key';
const CREATE_FS_OPTION = 'create_filesystem';

/** The agent driver and source for a device under the configured block driver (one table for rootfs and volumes). */
export function blockDriverSource(
  dev: AttachedBlockDevice,
  settings: ResolvedSettings,
  devicePath: string,
): { driver: string; source: string } {
  // A pmem device is an nvdimm whatever block_device_driver says (handleBlockVolume).
  if (dev.pmem !== undefined) return { driver: DRIVER_NVDIMM_TYPE, source: dev.pmem };
  const need = (key: keyof AttachedBlockDevice, driver: string): { driver: string; source: string } => {
    const v = dev[key];
    if (typeof v !== 'string') {
      throw planError(
        'ERR_INVALID_RUNTIME_SETTINGS',
        at(devicePath, key),
        v,
        `is required with blockDeviceDriver '${settings.blockDeviceDriver}' (the device's guest address)`,
      );
    }
    return { driver, source: v };
  };
  switch (settings.blockDeviceDriver) {
    case 'virtio-blk':
      return need('pciPath', DRIVER_BLK_PCI_TYPE);
    case 'virtio-scsi':
      return need('scsiAddr', DRIVER_SCSI_TYPE);
    case 'virtio-mmio':
      return need('virtPath', DRIVER_BLK_MMIO_TYPE);
    case 'virtio-blk-ccw':
      return need('devNo', DRIVER_BLK_CCW_TYPE);
    case 'nvdimm':
      return need('pmem', DRIVER_NVDIMM_TYPE);
  }
}

/** True when the mount names a block device: attached, flagged by Kata's option, or stat'd as one. */
export function isBlockVolume(m: WorkingMount, settings: ResolvedSettings): boolean {
  return (
    settings.blockDevices.has(cleanPath(m.source)) ||
    m.options.includes(FILE_BLOCK_DEVICE_OPTION) ||
    settings.volumes.get(cleanPath(m.source))?.kind === 'block'
  );
}

/** The attached device of a block volume, or ERR_BLOCK_DEVICE_NOT_ATTACHED naming the mount's source. */
export function attachedDevice(
  m: WorkingMount,
  settings: ResolvedSettings,
): { device: AttachedBlockDevice; devicePath: string } {
  const key = cleanPath(m.source);
  const device = settings.blockDevices.get(key);
  if (device === undefined) {
    throw planError(
      'ERR_BLOCK_DEVICE_NOT_ATTACHED',
      mountPath(m, 'source'),
      m.source,
      'is a block device but the runtime attached none for it: add it to settings.blockDevices with its guest address',
    );
  }
  return { device, devicePath: at('blockDevices', key) };
}

const isKataOption = (o: string): boolean => o.startsWith('io.katacontainers.');
const isBindWord = (o: string): boolean => o === 'bind' || o === 'rbind';
/** Propagation words describe the container's bind, not the device's own mount. */
const PROPAGATION = new Set([
  'private',
  'rprivate',
  'shared',
  'rshared',
  'slave',
  'rslave',
  'unbindable',
  'runbindable',
]);

const RECURSIVE_WORDS = new Map([
  ['rro', 'ro'],
  ['rnosuid', 'nosuid'],
  ['rnodev', 'nodev'],
  ['rnoexec', 'noexec'],
]);

export interface BlockVolumePlan {
  storage: Storage;
  action: AttachBlockDeviceAction;
  layer: boolean;
}

/**
 * The filesystem type the runtime gave for `device`, where the guest cannot do without it (`what`
 * says which use needs it); ERR_INVALID_RUNTIME_SETTINGS at `<devicePath>.fstype` when missing.
 */
export function requiredFstype(device: AttachedBlockDevice, devicePath: string, what: string): string {
  if (device.fstype === undefined) {
    throw planError('ERR_INVALID_RUNTIME_SETTINGS', at(devicePath, 'fstype'), undefined, `is required for ${what}`);
  }
  return device.fstype;
}

/**
 * One block volume (Kata's createBlkStorageObject + handleBlkOCIMounts). The storage's fstype is
 * the device's filesystem when the runtime knows it (a direct-assigned volume's mountInfo), else
 * the mount's type, so a plain bind of a device node stays `bind` (the node is bound). Its options
 * are the device's, else the mount's, without bind/rbind when a filesystem is mounted (runtime-rs
 * filter_block_storage_options: `bind` would turn the device mount into a bind of the node) and
 * with `ro` when the mount is read-only (`ro`, or `rro` from a KEP-3857 recursiveReadOnly volume:
 * the superblock itself must be read-only, or ext4 would replay its journal on a shared disk). The OCI mount becomes a bind of the storage's path.
 */
export function planBlockVolume(m: WorkingMount, settings: ResolvedSettings): BlockVolumePlan {
  const { device, devicePath } = attachedDevice(m, settings);
  const { driver, source } = blockDriverSource(device, settings, devicePath);
  const readonly = isReadOnlyMount(m.options);
  const ociOptions = m.options.filter((o) => !isKataOption(o));
  let fstype: string;
  let options: string[];
  if (device.pmem !== undefined) {
    // handleBlockVolume: an nvdimm volume is mounted with dax and the device's format.
    fstype = requiredFstype(device, devicePath, "a pmem device (Kata's BlockDrive.Format)");
    options = ['dax'];
  } else {
    fstype = device.fstype ?? m.type;
    options = device.options !== undefined ? [...device.options] : ociOptions;
    if (fstype === 'bind') {
      // The node itself is bound; with no options at all, Kata's vhost-user-blk default.
      if (options.length === 0) options = ['bind'];
    } else {
      options = options.filter((o) => !isBindWord(o) && !PROPAGATION.has(o));
    }
  }
  // The device's own mount has nothing below it (a new superblock, or a bind of the node), so
  // runc's recursive words are the plain ones there; as plain words they also take mount(2).
  options = options.map((o) => RECURSIVE_WORDS.get(o) ?? o);
  if (readonly && !options.includes('ro')) options.push('ro');
  const storage: Storage = { driver, source, fstype, options, mountPoint: m.destination };
  const driverOptions: string[] = [];
  if (device.encryptionKey !== undefined) driverOptions.push(`${ENCRYPTION_KEY_OPTION}=${device.encryptionKey}`);
  if (device.createFilesystem === true) driverOptions.push(CREATE_FS_OPTION);
  if (driverOptions.length > 0) storage.driverOptions = driverOptions;
  if (device.fsGroup !== undefined) storage.fsGroup = { ...device.fsGroup };
  if (device.shared === true) storage.shared = true;
  const action: AttachBlockDeviceAction = {
    action: 'attach-block-device',
    source: m.source,
    driver,
    address: source,
    readonly,
    for: mountPath(m),
  };
  const layer = m.options.includes(LAYER_OPTION);
  if (!layer) {
    // One mount point per device (base64url of its guest address, as Kata), so containers that
    // mount the same device share one guest mount, reference-counted by the agent.
    storage.mountPoint = posix.join(settings.guestStorageDir, base64Url(source));
    m.source = storage.mountPoint;
    m.type = 'bind';
    m.options = ociOptions.some(isBindWord) ? ociOptions : [...ociOptions, 'bind'];
  }
  return { storage, action, layer };
}

/** Go's base64.URLEncoding: the URL alphabet with '=' padding (Node's base64url drops the padding). */
export function base64Url(s: string): string {
  return Buffer.from(s).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}
