// Driver name -> handler. The default registry holds every driver of Kata's agent; agents may add
// their own, never silently replace one.
import { StorageError, invalidArgType } from './errors';
import { ninePHandler } from './handlers/9p';
import { blkHandler } from './handlers/blk';
import { blkCcwHandler } from './handlers/blk-ccw';
import { mmioblkHandler } from './handlers/mmioblk';
import { nvdimmHandler } from './handlers/nvdimm';
import { scsiHandler } from './handlers/scsi';
import { ephemeralHandler } from './handlers/ephemeral';
import { localHandler } from './handlers/local';
import { overlayfsHandler } from './handlers/overlayfs';
import { virtioFsHandler } from './handlers/virtio-fs';
import { watchableBindHandler } from './handlers/watchable-bind';
import { erofsMultiLayerHandler } from './handlers/erofs-multi-layer';
import { MULTI_LAYER_DRIVER } from './multi-layer';
import type { MountApi } from './mount';
import type { Placement, Storage } from './storage';

export interface StorageContext {
  readonly driver: string;
  readonly containerId?: string;
  readonly signal?: AbortSignal;
  readonly sysfsRoot: string;
  readonly devRoot: string;
  readonly hotplugTimeoutMs: number;
  /** How often watchable-bind storages poll their source (the Sandbox's watchIntervalMs). */
  readonly watchIntervalMs: number;
  /** The Sandbox's mount API, for mounts a handler makes outside create (watchable-bind's fallback). */
  readonly mountApi: MountApi | undefined;
  readonly allowedRoots: readonly string[];
  /** Where the storage's mount point lies (its allowed root and the path below it). */
  readonly placement: Placement;
  /**
   * Creates the mount point (a file when `file`, for binding a device node) and its missing
   * parents beneath the allowed root, refusing symlinks; whatever it creates is removed again
   * on release or rollback.
   */
  makeMountPoint(opts?: { file?: boolean }): Promise<void>;
  /** Creates a directory (and parents) beneath an allowed root; on release it goes with its content. */
  makeDirectory(path: string): Promise<void>;
  /** Mounts through the package's mount() and records it, so release or rollback unmounts it. */
  mount(source: string, target: string, fstype: string, options?: readonly string[]): Promise<void>;
  /** Times a device wait and reports it on the `kata-storage:wait` channel. */
  waitFor(source: string, wait: () => Promise<string>): Promise<string>;
}

export interface ReleaseContext {
  readonly driver: string;
  /** The storage as it was added. */
  readonly storage: Storage;
  /** True when this sandbox created the mount point (so it may remove it). */
  readonly createdMountPoint: boolean;
}

export interface StorageHandler {
  /** Driver-specific checks, run for the whole request before anything is touched. Throws. */
  validate?(storage: Storage, ctx: { allowedRoots: readonly string[]; containerId?: string }): void;
  /** Makes the storage exist; resolves with the path to hold (normally the mount point). */
  create(storage: Storage, ctx: StorageContext): Promise<string>;
  /** Cleanup other than the unmounts and directories the context recorded. */
  release?(path: string, ctx: ReleaseContext): Promise<void>;
}

export class StorageHandlerRegistry {
  readonly #handlers = new Map<string, StorageHandler>();

  register(driver: string, handler: StorageHandler): this {
    if (typeof driver !== 'string' || driver === '') throw invalidArgType('driver', 'a non-empty string', driver);
    if (typeof handler !== 'object' || handler === null || typeof handler.create !== 'function') {
      throw invalidArgType('handler', 'an object with a create(storage, ctx) method', handler);
    }
    if (this.#handlers.has(driver)) {
      throw new StorageError('ERR_STORAGE_DRIVER_EXISTS', `a handler for storage driver '${driver}' is already registered`, {
        value: driver,
      });
    }
    this.#handlers.set(driver, handler);
    return this;
  }

  get(driver: string): StorageHandler | undefined {
    return this.#handlers.get(driver);
  }

  has(driver: string): boolean {
    return this.#handlers.has(driver);
  }

  drivers(): string[] {
    return [...this.#handlers.keys()];
  }
}

/**
 * A fresh registry with every built-in driver (DESIGN 4): every driver Kata's agent registers
 * (storage/mod.rs STORAGE_HANDLERS) except image guest-pull, which needs the image service.
 */
export function defaultRegistry(): StorageHandlerRegistry {
  return new StorageHandlerRegistry()
    .register('virtio-fs', virtioFsHandler)
    .register('9p', ninePHandler)
    .register('blk', blkHandler)
    .register('blk-ccw', blkCcwHandler)
    .register('mmioblk', mmioblkHandler)
    .register('scsi', scsiHandler)
    .register('nvdimm', nvdimmHandler)
    .register('ephemeral', ephemeralHandler)
    .register('local', localHandler)
    .register('overlayfs', overlayfsHandler)
    .register('watchable-bind', watchableBindHandler)
    .register(MULTI_LAYER_DRIVER, erofsMultiLayerHandler);
}
