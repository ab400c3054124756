// The sandbox's storage table: one entry per mount point, reference-counted across containers,
// serialized per mount point, transactional per request, and never forgetting a storage whose
// cleanup failed.
import { StorageError, abortError, invalidArgType, invalidArgValue } from '../errors';
import { tracePromise } from '../events';
import type { MountApi } from '../mount';
import { updateEphemeralMounts, type EphemeralUpdate } from '../handlers/ephemeral-update';
import { groupMultiLayer } from '../handlers/multi-layer';
import { inCallerOrder, parentsFirst } from '../request-order';
import { requestEnded, requestStarted } from '../native';
import { StorageTable, destroyedError, errorsOf, pathArg, type Taken } from './table';
import { addAsOneJob, stepsOf } from './job';
import { acquire } from './create';
import { cleanup, release, releaseAsOneJob, releaseJobs, retryLeftovers, retryPending } from './release';
import { defaultRegistry, type StorageHandlerRegistry } from '../registry';
import {
  checkPlacement,
  checkAllowedRoots,
  normalizeStorage,
  validateStorage,
  type PreparedStorage,
  type StorageInput,
} from '../storage';

export interface SandboxOptions {
  registry?: StorageHandlerRegistry;
  /** Mount points must lie beneath one of these. Default ['/run/kata-containers']. */
  allowedRoots?: string[];
  sysfsRoot?: string;
  devRoot?: string;
  /** How long block drivers wait for a hot-plugged device. Default 3000 ms. */
  hotplugTimeoutMs?: number;
  /** Each unmount retries EBUSY for this long before the cleanup is reported as failed. Default 0. */
  umountBusyTimeoutMs?: number;
  /** Which kernel mount API the sandbox's mounts use. Default 'auto' (or KATA_STORAGE_MOUNT_API). */
  mountApi?: MountApi;
  /** How often `watchable-bind` storages poll their source. Default 2000 ms (Kata's WATCH_INTERVAL_SECS). */
  watchIntervalMs?: number;
}

export interface AddStoragesOptions {
  containerId?: string;
  signal?: AbortSignal;
}

export interface StorageInfo {
  refcount: number;
  /** '' for entries made with setSandboxStorage. */
  driver: string;
  shared: boolean;
  /** An unmount (or a driver's release) failed; the next release, add of it or destroy() retries it. */
  cleanupPending: boolean;
}

export class Sandbox {
  readonly allowedRoots: readonly string[];
  readonly sysfsRoot: string;
  readonly devRoot: string;
  readonly hotplugTimeoutMs: number;
  readonly umountBusyTimeoutMs: number;
  readonly registry: StorageHandlerRegistry;
  readonly mountApi: MountApi | undefined;
  readonly watchIntervalMs: number;

  readonly #table: StorageTable;

  constructor(opts: SandboxOptions = {}) {
    if (typeof opts !== 'object' || opts === null) throw invalidArgType('options', 'of type object', opts);
    const own = <K extends keyof SandboxOptions>(k: K): SandboxOptions[K] =>
      Object.hasOwn(opts, k) ? opts[k] : undefined;
    this.allowedRoots = Object.freeze(checkAllowedRoots(own('allowedRoots') ?? ['/run/kata-containers']));
    this.sysfsRoot = own('sysfsRoot') ?? '/sys';
    this.devRoot = own('devRoot') ?? '/dev';
    this.hotplugTimeoutMs = nonNegative('hotplugTimeoutMs', own('hotplugTimeoutMs') ?? 3000);
    this.umountBusyTimeoutMs = nonNegative('umountBusyTimeoutMs', own('umountBusyTimeoutMs') ?? 0);
    this.watchIntervalMs = nonNegative('watchIntervalMs', own('watchIntervalMs') ?? 2000);
    this.registry = own('registry') ?? defaultRegistry();
    const api = own('mountApi');
    if (api !== undefined && api !== 'auto' && api !== 'new' && api !== 'legacy') {
      throw invalidArgValue('options.mountApi', api, "must be 'auto', 'new' or 'legacy'");
    }
    this.mountApi = api;
    this.#table = new StorageTable(this);
  }

  /**
   * Validates every storage, then creates them in order. A mount point already held only gains a
   * reference. If one fails, every reference this call took is given back in reverse order
   * (unmounting and removing only what this call created) and the first error is rethrown, with
   * `rollbackErrors` when giving back failed too.
   */
  addStorages(storages: readonly StorageInput[], opts: AddStoragesOptions = {}): Promise<string[]> {
    const containerId =
      typeof opts === 'object' && opts !== null && Object.hasOwn(opts, 'containerId') ? opts.containerId : undefined;
    return tracePromise(
      'addStorages',
      () => ({ call: 'addStorages' as const, containerId, storages: Array.isArray(storages) ? storages.length : 0 }),
      () => this.#addStorages(storages, opts),
    );
  }

  async #addStorages(storages: readonly unknown[], opts: AddStoragesOptions): Promise<string[]> {
    requestStarted();
    try {
      return await this.#add(storages, opts);
    } finally {
      requestEnded();
    }
  }

  async #add(storages: readonly unknown[], opts: AddStoragesOptions): Promise<string[]> {
    if (!Array.isArray(storages)) throw invalidArgType('storages', 'an array', storages);
    const containerId = Object.hasOwn(opts, 'containerId') ? opts.containerId : undefined;
    const signal = Object.hasOwn(opts, 'signal') ? opts.signal : undefined;
    if (containerId !== undefined && typeof containerId !== 'string')
      throw invalidArgType('options.containerId', 'of type string', containerId);
    if (this.#table.destroyed) throw destroyedError();
    // The whole request is validated and parsed once, here; what flows down is the prepared form.
    // Kata's multi-layer EROFS storages become one request for the overlay they assemble.
    const planned = groupMultiLayer(storages.map((x) => normalizeStorage(x))).map((normalized) => {
      const handler = this.registry.get(normalized.driver);
      // The walk from the root is checked below, with the rest of the request's mount points.
      const { placement, mountOptions } = validateStorage(normalized, this.allowedRoots, false);
      if (handler === undefined) {
        throw new StorageError(
          'ERR_UNKNOWN_STORAGE_DRIVER',
          `no handler is registered for storage driver '${normalized.driver}' (registered: ${this.registry.drivers().join(', ') || 'none'})`,
          { value: normalized.driver, registered: this.registry.drivers() },
        );
      }
      // The normalized storage is a fresh object of ours: it becomes the prepared one in place
      // (a copy through object spread cost more than the rest of its validation), and driverData
      // joins it once the handler's validate() returned.
      const storage = normalized as { -readonly [K in keyof PreparedStorage]: PreparedStorage[K] };
      storage.mountOptions = mountOptions;
      storage.placement = placement;
      const driverData = handler.validate?.(
        storage,
        containerId === undefined
          ? { allowedRoots: this.allowedRoots }
          : { allowedRoots: this.allowedRoots, containerId },
      );
      if (driverData !== undefined) storage.driverData = driverData;
      return { storage, placement, handler };
    });
    // Parents before what lies beneath them; no new mount over a held storage (lib/request-order.ts).
    const plan = parentsFirst(planned, this.#table.entries, this.#table.locks.held());
    if (signal?.aborted) throw abortError(signal);

    // A request whose every storage has steps is one native job, whoever listens.
    const steps = stepsOf(plan);
    if (steps !== undefined) {
      let taken = addAsOneJob(this.#table, plan, steps, containerId, signal);
      if (taken instanceof Promise) taken = await taken;
      this.#table.holdFor(containerId, taken);
      return inCallerOrder(
        plan,
        taken.map((t) => t.path),
      );
    }
    for (const { storage, placement } of plan) checkPlacement(storage.mountPoint, placement);
    const taken: Taken[] = [];
    const held: string[] = [];
    try {
      for (const item of plan) {
        if (signal?.aborted) throw abortError(signal);
        const { storage } = item;
        const r = await tracePromise(
          'storage',
          () => ({ driver: storage.driver, mountPoint: storage.mountPoint, containerId, storage }),
          () => acquire(this.#table, storage, item.placement, item.handler, containerId, signal),
        );
        taken.push(r.taken);
        held.push(r.held);
      }
    } catch (err) {
      const rollbackErrors: Error[] = [];
      for (let i = taken.length - 1; i >= 0; i--) {
        try {
          await release(this.#table, taken[i]!.path, 'rollback', taken[i]!.created, containerId);
        } catch (e) {
          rollbackErrors.push(e as Error);
        }
      }
      errorsOf(err, 'rollbackErrors', rollbackErrors);
      throw err;
    }
    this.#table.holdFor(containerId, taken);
    return inCallerOrder(plan, held);
  }

  /**
   * Gives back exactly the references that container's addStorages calls took, then retries
   * cleanups left pending by earlier calls. An id the sandbox does not know (never added, already
   * removed, or cleared by destroy()) holds nothing: it resolves having released nothing, so a
   * runtime may retry a RemoveContainer safely. Rejects with the first failed unmount (each waits
   * at most umountBusyTimeoutMs), `cleanupErrors` holding the others.
   */
  removeContainer(containerId: string): Promise<void> {
    return tracePromise(
      'removeContainer',
      () => ({ call: 'removeContainer' as const, containerId }),
      () => this.#removeContainer(containerId),
    );
  }

  async #removeContainer(containerId: string): Promise<void> {
    requestStarted();
    try {
      await this.#remove(containerId);
    } finally {
      requestEnded();
    }
  }

  async #remove(containerId: string): Promise<void> {
    if (typeof containerId !== 'string') throw invalidArgType('containerId', 'of type string', containerId);
    const refs = this.#table.containers.get(containerId);
    this.#table.containers.delete(containerId);
    const pendingBefore = this.#table.pendingPaths();
    const errors: Error[] = [];
    const releases = refs === undefined ? undefined : releaseJobs(this.#table, refs);
    if (releases !== undefined) {
      for (const t of refs!) pendingBefore.delete(t.path);
      await releaseAsOneJob(this.#table, releases, errors, containerId);
    } else {
      for (let i = (refs?.length ?? 0) - 1; i >= 0; i--) {
        pendingBefore.delete(refs![i]!.path);
        try {
          await release(this.#table, refs![i]!.path, 'release', false, containerId);
        } catch (e) {
          if ((e as { code?: string }).code !== 'ERR_STORAGE_NOT_FOUND') errors.push(e as Error);
        }
      }
    }
    await retryPending(this.#table, pendingBefore);
    if (errors.length > 0) {
      errorsOf(errors[0], 'cleanupErrors', errors.slice(1));
      throw errors[0];
    }
  }

  /** Kata's add_sandbox_storage: a reference without a mount. True when the entry is new. */
  setSandboxStorage(path: string, shared = false): boolean {
    return this.#table.reference(pathArg(path), shared === true);
  }

  /**
   * Drops one reference. True when the count reached zero: an entry with nothing to clean is
   * forgotten; one this sandbox mounted or created stays, marked, until unsetAndRemove, the next
   * release or destroy() cleans it (so nothing leaks).
   */
  unsetSandboxStorage(path: string): boolean {
    return this.#table.unreference(pathArg(path));
  }

  /** Drops one reference and, when it was the last, unmounts and removes what was created. */
  async unsetAndRemoveSandboxStorage(path: string): Promise<boolean> {
    path = pathArg(path);
    const pendingBefore = this.#table.pendingPaths();
    pendingBefore.delete(path);
    const gone = await release(this.#table, path, 'release', true);
    await retryPending(this.#table, pendingBefore);
    return gone;
  }

  refcount(path: string): number {
    return this.#table.entries.get(pathArg(path))?.refcount ?? 0;
  }

  storages(): Map<string, StorageInfo> {
    return this.#table.info();
  }

  /**
   * Kata's UpdateEphemeralMounts: remounts held `ephemeral` tmpfs storages with their new options
   * (an emptyDir sizeLimit change). See lib/handlers/ephemeral-update.ts for the checks and codes.
   */
  updateEphemeralMounts(storages: readonly StorageInput[]): Promise<EphemeralUpdate[]> {
    return updateEphemeralMounts(storages, {
      held: (p) => {
        const e = this.#table.entries.get(p);
        return e?.cleanupPending ? undefined : e;
      },
      withLock: (p, fn) => this.#table.locks.withLock(p, fn),
      mountApi: this.mountApi,
    });
  }

  /**
   * Releases everything, shared storages too, and retires the sandbox: addStorages and
   * setSandboxStorage are refused from now on (ERR_SANDBOX_DESTROYED), even while this runs.
   * Entries whose unmount fails stay, marked; calling destroy() again retries them.
   */
  destroy(): Promise<void> {
    return tracePromise(
      'destroy',
      () => ({ call: 'destroy' as const }),
      () => this.#destroy(),
    );
  }

  async #destroy(): Promise<void> {
    this.#table.destroyed = true;
    this.#table.containers.clear();
    const errors: Error[] = [];
    for (const path of [...this.#table.entries.keys()].reverse()) {
      try {
        await this.#table.locks.withLock(path, async () => {
          const e = this.#table.entries.get(path);
          if (!e) return;
          e.refcount = 0;
          await cleanup(this.#table, e, 'destroy');
        });
      } catch (err) {
        errors.push(err as Error);
      }
    }
    await retryLeftovers(this.#table);
    if (errors.length > 0) {
      errorsOf(errors[0], 'cleanupErrors', errors.slice(1));
      throw errors[0];
    }
  }

  /** True once destroy() was called. */
  get destroyed(): boolean {
    return this.#table.destroyed;
  }
}

function nonNegative(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
    throw invalidArgValue(`options.${name}`, v, 'must be a non-negative integer number of milliseconds');
  }
  return v;
}
