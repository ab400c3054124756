// The container's root filesystem (Kata's FilesystemShare.ShareRootFilesystem): a rootfs on a
// block device the runtime attached is a block storage the agent mounts; any other is bound into
// the shared directory by the host and needs no storage.
import { posix } from 'node:path';
import type { Storage } from '../storage';
import { at, planError } from './errors';
import { blockDriverSource, requiredFstype } from './block';
import type { AttachBlockDeviceAction, ShareAction } from './host-actions';
import type { ResolvedSettings } from './settings';
import { hostMountsDir } from './share';
import type { OciSpec } from './spec';
import { cleanPath } from './paths';

export interface RootfsPlan {
  storages: Storage[];
  actions: (ShareAction | AttachBlockDeviceAction)[];
  /** The rewritten `root.path`: the rootfs as the guest sees it. */
  guestPath: string;
}

export function planRootfs(containerId: string, spec: OciSpec, s: ResolvedSettings): RootfsPlan {
  if (spec.root === undefined)
    throw planError('ERR_INVALID_SPEC', 'root', undefined, 'is required (the container root filesystem)');
  let hostPath = spec.root.path;
  if (!hostPath.startsWith('/')) {
    if (s.bundle === undefined)
      throw planError('ERR_INVALID_SPEC', 'root.path', hostPath, 'is relative to the bundle: pass settings.bundle');
    hostPath = posix.join(s.bundle, hostPath);
  }
  hostPath = cleanPath(hostPath);
  const guestPath = posix.join(s.guestSharedDir, containerId, s.rootfsSuffix);
  const device = s.blockDevices.get(hostPath);
  if (device !== undefined) {
    const devicePath = at('blockDevices', hostPath);
    const fstype = requiredFstype(device, devicePath, "a block rootfs (Kata's container state Fstype)");
    if (device.pmem !== undefined || s.blockDeviceDriver === 'nvdimm') {
      // ShareRootFilesystem knows mmio, ccw, blk and scsi only.
      throw planError(
        'ERR_INVALID_RUNTIME_SETTINGS',
        devicePath,
        device,
        'a container rootfs cannot be an nvdimm device',
      );
    }
    const { driver, source } = blockDriverSource(device, s, devicePath);
    const storage: Storage = {
      driver,
      source,
      fstype,
      mountPoint: posix.join(s.guestSharedDir, containerId),
    };
    // xfs refuses a second mount of a filesystem with the same UUID (cloned image layers).
    if (fstype === 'xfs') storage.options = ['nouuid'];
    else if (device.options !== undefined) storage.options = [...device.options];
    return {
      storages: [storage],
      actions: [
        {
          action: 'attach-block-device',
          source: hostPath,
          driver,
          address: source,
          readonly: spec.root.readonly === true,
          for: 'root.path',
        },
      ],
      guestPath,
    };
  }
  if (s.sharedFs === 'none') {
    throw planError(
      'ERR_INVALID_SPEC',
      'root.path',
      spec.root.path,
      'cannot reach the guest with sharedFs none: attach it as a block device (settings.blockDevices)',
    );
  }
  return {
    storages: [],
    actions: [
      {
        action: 'share',
        source: hostPath,
        hostPath: posix.join(hostMountsDir(s), containerId, s.rootfsSuffix),
        guestPath,
        readonly: false,
        for: 'root.path',
      },
    ],
    guestPath,
  };
}
