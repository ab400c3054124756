// Block drivers: resolve the disk the runtime announced (PCI path, CCW bus id, SCSI address,
// predicted /dev name), check it really is a block device, optionally make its filesystem, mount.
import { execFile } from 'node:child_process';
import { assertBlockDevice, type WaitOptions } from '../../devices';
import { StorageError } from '../../errors';
import { channels, timed, tracePromise } from '../../events';
import type { DeviceContext, ReleaseContext, StorageContext, StorageHandler, StorageSteps } from '../../handler';
import type { PreparedStorage, Storage } from '../../storage';
import {
  VERITY_INFO,
  createVerityDevice,
  parseVerityInfo,
  removeVerityDevice,
  type DmVerityInfo,
  type VerityDevice,
} from './verity';
import { mountStorage } from '../common';

/** dm-verity devices by the mount point they back, removed on release or rollback. */
const verityDevices = new Map<string, VerityDevice>();

const CREATE_FILESYSTEM = 'create_filesystem';
// Kata's options for the ext4 of a block-backed emptyDir (no journal, no reserved blocks, few
// small inodes: the device is fresh and lives only as long as the pod).
const MKFS_EXT4_ARGS = ['-F', '-O', '^has_journal', '-m', '0', '-i', '163840', '-I', '128'];

export type Resolver = (storage: Storage, opts: WaitOptions) => Promise<string>;

function badDriverOption(word: string, why: string): StorageError {
  return new StorageError('ERR_INVALID_MOUNT_OPTION', `driver option '${word}' ${why}`, { value: word });
}

function checkDriverOptions(storage: Storage): void {
  for (const o of storage.driverOptions ?? []) {
    if (o === CREATE_FILESYSTEM) {
      if (storage.fstype !== 'ext4')
        throw badDriverOption(o, `is only supported for ext4 (fstype is '${storage.fstype}')`);
    } else if (o.startsWith(VERITY_INFO)) {
      parseVerityInfo(o);
      if ((storage.driverOptions ?? []).includes(CREATE_FILESYSTEM) || storage.fstype === 'bind') {
        throw badDriverOption(
          o,
          `is for a read-only filesystem; it cannot go with ${storage.fstype === 'bind' ? "fstype 'bind'" : CREATE_FILESYSTEM}`,
        );
      }
    } else if (o.startsWith('encryption_key=')) {
      throw badDriverOption(
        o,
        'needs the confidential data hub (LUKS on an ephemeral key), which this agent does not have',
      );
    } else {
      throw badDriverOption(o, 'is not supported for block storage');
    }
  }
}

/** mkfs.ext4 as Kata runs it; spawned, as Kata does. */
export function makeExt4(device: string, signal?: AbortSignal): Promise<void> {
  const run = (): Promise<void> =>
    tracePromise(
      'mkfs',
      () => ({ device, fstype: 'ext4' }),
      () =>
        new Promise<void>((resolve, reject) => {
          execFile('mkfs.ext4', [...MKFS_EXT4_ARGS, device], signal ? { signal } : {}, (err, _stdout, stderr) => {
            if (!err) return resolve();
            if ((err as { code?: unknown }).code === 'ABORT_ERR') return reject(err);
            reject(
              new StorageError(
                'ERR_MKFS_FAILED',
                `mkfs.ext4 ${device} failed: ${String(stderr).trim() || err.message}`,
                { value: device, cause: err },
              ),
            );
          });
        }),
    );
  return timed(channels.mkfs, run, (durationMs, error) => ({ device, fstype: 'ext4', durationMs, error }));
}

function verityInfo(storage: Storage): DmVerityInfo | undefined {
  const o = (storage.driverOptions ?? []).find((w) => w.startsWith(VERITY_INFO));
  return o === undefined ? undefined : parseVerityInfo(o);
}

/** How a disk is mounted: its filesystem, or (vhost-user-blk, fstype 'bind') its node bound onto a file. */
function diskMount(storage: Storage): { fstype: string; options: readonly string[]; file: boolean } {
  const options = storage.options ?? [];
  return storage.fstype === 'bind'
    ? { fstype: '', options: ['bind', ...options], file: true }
    : { fstype: storage.fstype, options, file: false };
}

/**
 * A block driver: `validateSource` refuses a malformed bus address up front; `resolve` finds (and
 * waits for) the device node.
 */
export function blockHandler(validateSource: (source: string) => void, resolve: Resolver): StorageHandler {
  // The one disk this storage mounts, waited for when it is still being hot-plugged.
  const devices = async (storage: PreparedStorage, ctx: DeviceContext): Promise<string[]> => {
    const opts: WaitOptions = { sysfsRoot: ctx.sysfsRoot, devRoot: ctx.devRoot, timeoutMs: ctx.hotplugTimeoutMs };
    if (ctx.signal) opts.signal = ctx.signal;
    return [await ctx.waitFor(storage.source, () => resolve(storage, opts))];
  };
  return {
    validate(storage: Storage): void {
      validateSource(storage.source);
      checkDriverOptions(storage);
    },
    devices,
    async create(storage: PreparedStorage, ctx: StorageContext): Promise<string> {
      // The Sandbox started the wait with the request; a caller of create() alone waits here.
      const [device] = (await (ctx.devices ?? devices(storage, ctx))) as [string];
      const dev = assertBlockDevice(device);
      const verity = verityInfo(storage);
      if (verity) {
        const v = await createVerityDevice(ctx.devRoot, device, dev, verity);
        verityDevices.set(storage.mountPoint, v);
        return mountStorage(storage, ctx, { source: v.node, options: [...(storage.options ?? []), 'ro'] });
      }
      if ((storage.driverOptions ?? []).includes(CREATE_FILESYSTEM)) await makeExt4(device, ctx.signal);
      return mountStorage(storage, ctx, { ...diskMount(storage), source: device });
    },
    steps(storage: PreparedStorage): StorageSteps | undefined {
      // mkfs and dm-verity run in create(), between the wait and the mount.
      if ((storage.driverOptions ?? []).length > 0) return undefined;
      return { ...diskMount(storage), source: storage.source, device: 'block' };
    },
    async release(path: string, _ctx: ReleaseContext): Promise<void> {
      const v = verityDevices.get(path);
      if (v === undefined) return;
      // Deferred: the kernel removes the device when the unmount that follows closes it.
      await removeVerityDevice(v);
      verityDevices.delete(path);
    },
  };
}
