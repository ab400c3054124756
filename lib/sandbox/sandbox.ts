// The sandbox's storage table: one entry per mount point, reference-counted across containers,
// serialized per mount point, transactional per request, and never forgetting a storage whose
// cleanup failed.
import { StorageError, abortError, explainMountError, invalidArgType, invalidArgValue } from '../errors';
import { channels, timed, tracePromise } from '../events';
import { abortedMountsSettled, checkPath, mountApiOf, mountRecorded, type MountApi } from '../mount';
import { updateEphemeralMounts, type EphemeralUpdate } from '../handlers/ephemeral-update';
import { groupMultiLayer } from '../handlers/multi-layer';
import { inCallerOrder, parentsFirst } from '../request-order';
import { applyStorageJobs, native, requestEnded, requestStarted } from '../native';
import { StorageDevice } from '../storage-device';
import { StorageTable, destroyedError, errorsOf, pathArg, type Taken } from './table';
import { addAsOneJob, stepsOf, storageJob } from './job';
import { cleanup, release, releaseAsOneJob, releaseJobs, retryLeftovers, retryPending } from './release';
import { ownershipSkipped } from '../handlers/common';
import { defaultRegistry, type StorageContext, type StorageHandler, type StorageHandlerRegistry } from '../registry';
import {
  allowedRootOf,
  beneathRefusal,
  checkPlacement,
  checkAllowedRoots,
  normalizeStorage,
  placeMountPoint,
  validateStorage,
  type Placement,
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
          () => this.#acquire(storage, item.placement, item.handler, containerId, signal),
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

  #acquire(
    storage: PreparedStorage,
    placement: Placement,
    handler: StorageHandler,
    containerId: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ taken: Taken; held: string }> {
    const path = storage.mountPoint;
    return this.#table.locks.withLock(path, async () => {
      if (this.#table.destroyed) throw destroyedError();
      const existing = this.#table.entries.get(path);
      if (existing && existing.refcount === 0 && existing.cleanupPending) {
        // Half torn down: finish the job first; if that still fails, this request fails too.
        await cleanup(this.#table, existing, 'release');
      } else if (existing) {
        existing.refcount++;
        return { taken: { path, created: false }, held: path };
      }
      const e = new StorageDevice(path, storage.driver, storage.shared === true);
      e.storage = storage;
      e.handler = handler;
      const ctx = this.#context(e, storage, placement, containerId, signal);
      let held: string;
      try {
        held = await handler.create(storage, ctx);
        // destroy() ran meanwhile: it did not see this entry, so it must not outlive the call.
        if (this.#table.destroyed) throw destroyedError();
      } catch (err) {
        if (signal?.aborted) await abortedMountsSettled();
        try {
          await cleanup(this.#table, e, 'rollback', containerId);
        } catch (undoErr) {
          // Still mounted: keep it in the table, held by nobody and marked, so the next add of
          // this mount point, a release or destroy() finishes the job. Never claim it is held.
          this.#table.keepUndone(e);
          errorsOf(err, 'rollbackErrors', [undoErr as Error]);
        }
        throw err;
      }
      const raced = this.#table.entries.get(path);
      // setSandboxStorage() (synchronous) took a reference while we were creating.
      if (raced) raced.takeOver(e);
      else this.#table.entries.set(path, e);
      return { taken: { path, created: true }, held: typeof held === 'string' && held !== '' ? held : path };
    });
  }

  #context(
    e: StorageDevice,
    storage: PreparedStorage,
    placement: Placement,
    containerId: string | undefined,
    signal: AbortSignal | undefined,
  ): StorageContext {
    // The context's methods run with the context as `this`: the sandbox's parts they need, bound here.
    const claimLeftovers = (target: string): string[] => this.#table.claimLeftovers(target);
    const rootOf = (target: string): string => this.#rootOf(target);
    const { allowedRoots, mountApi } = this;
    const make = async (target: string, p: Placement, file: boolean): Promise<string[]> => {
      // Directories an earlier storage left behind on the way become this entry's (shallowest
      // first, before what is created now), so its release removes them and nobody else does.
      const claimed = claimLeftovers(target);
      e.created.push(...claimed);
      const r = await native.makeBeneath(p.root, p.rel, 0o755, file);
      if (!Array.isArray(r)) throw r;
      e.created.push(...r);
      return [...claimed, ...r];
    };
    const ownership = storage.fsGroup !== undefined || /(^|,)fsgid=/.test((storage.options ?? []).join(','));
    const mountEvent = (
      source: string,
      target: string,
      fstype: string,
      options: readonly string[],
      durationMs: number,
      error: Error | undefined,
      skipped?: boolean,
    ) => {
      // The job's own finding (statvfs ST_RDONLY) for the storage's mount point; for another
      // target, read from the mount just made, the test the handler's ownership step makes.
      const onPoint = target === storage.mountPoint;
      const readOnly = skipped === undefined ? onPoint && ownershipSkipped(storage) !== undefined : skipped;
      const fsGroupSkipped =
        ownership && onPoint && error === undefined && readOnly ? ('read-only' as const) : undefined;
      return {
        driver: storage.driver,
        source,
        mountPoint: target,
        fstype,
        options,
        containerId,
        ...(fsGroupSkipped ? { fsGroupSkipped } : {}),
        durationMs,
        error,
      };
    };
    return {
      driver: storage.driver,
      containerId,
      signal,
      sysfsRoot: this.sysfsRoot,
      devRoot: this.devRoot,
      hotplugTimeoutMs: this.hotplugTimeoutMs,
      watchIntervalMs: this.watchIntervalMs,
      mountApi: this.mountApi,
      allowedRoots: this.allowedRoots,
      placement,
      async makeMountPoint(opts = {}) {
        if ((await make(storage.mountPoint, placement, opts.file === true)).includes(storage.mountPoint))
          e.createdMountPoint = true;
      },
      async makeDirectory(path: string) {
        if ((await make(path, placeMountPoint(path, allowedRoots), false)).includes(path)) e.trees.add(path);
      },
      async mount(source, target, fstype, options = []) {
        // The storage's own mount point was placed once at validation; another target (a custom
        // driver's) is placed by the same rule.
        const root = target === storage.mountPoint ? placement.root : rootOf(target);
        const opts = { signal, mountApi, beneath: root };
        const id = await timed(
          channels.mount,
          () => mountRecorded(source, target, fstype, options, opts),
          (durationMs, error) => mountEvent(source, target, fstype, options, durationMs, error),
        );
        e.mounts.push({ path: target, id });
        e.memoryOnly = false;
      },
      async mountAtMountPoint(source, fstype, options = [], opts = {}) {
        const target = storage.mountPoint;
        // The same one-storage job as a request's (native/core/storage_steps.cc ApplyStorages).
        const mount = { source: checkPath(source, 'source'), fstype: checkPath(fstype, 'fstype', true), options };
        const job = storageJob(
          storage,
          opts.fsgid === undefined ? mount : { ...mount, fsgid: opts.fsgid },
          mountApiOf(mountApi),
          opts.file === true,
        );
        if (signal?.aborted) throw abortError(signal);
        let skipped = false;
        await timed(
          channels.mount,
          async () => {
            // As make(): leftovers on the way become this entry's before the job creates the rest.
            const claimed = claimLeftovers(target);
            e.created.push(...claimed);
            const { outcomes, failed, error, undoErrors, refusal, ranHere } = await applyStorageJobs([job]);
            if (refusal !== undefined) throw beneathRefusal(target, refusal[0], refusal[1]);
            // Everything it made, or after a failure what its own undo could not remove: this
            // entry's to release, recorded before any error is thrown.
            const outcome = outcomes[0];
            const created: string[] = outcome?.created ?? [];
            e.created.push(...created);
            e.mounts.push(...(outcome?.mounted ?? []));
            // Its release may run on this thread too when this was its only mount.
            e.memoryOnly = ranHere && e.mounts.length === (outcome?.mounted.length ?? 0);
            if (claimed.includes(target) || created.includes(target)) e.createdMountPoint = true;
            skipped = outcome?.ownershipSkipped === true;
            if (failed >= 0) {
              // Named the way mount() names it (an unknown fstype, no CAP_SYS_ADMIN).
              const err = explainMountError(error!, fstype);
              errorsOf(err, 'rollbackErrors', undoErrors);
              throw err;
            }
            if (signal?.aborted) throw abortError(signal);
          },
          (durationMs, error) => mountEvent(source, target, fstype, options, durationMs, error, skipped),
        );
      },
      waitFor(source, wait) {
        return timed(channels.wait, wait, (durationMs, error, device) => ({
          driver: storage.driver,
          source,
          device,
          durationMs,
          error,
        }));
      },
    };
  }

  /**
   * The allowed root a mount target is resolved beneath (openat2 RESOLVE_BENEATH |
   * RESOLVE_NO_SYMLINKS, then the mount goes onto that fd), so a directory swapped for a symlink
   * between validation and mount cannot redirect it: the innermost matching root, the rule
   * validation placed the mount point by (allowedRootOf). Kernels before 5.6 lack openat2: there
   * the addon walks the same path one O_NOFOLLOW component at a time.
   */
  #rootOf(target: string): string {
    const root = allowedRootOf(target, this.allowedRoots);
    if (root === undefined) {
      throw new StorageError(
        'ERR_INVALID_STORAGE',
        `mount target ${target} is not strictly beneath an allowed root (${this.allowedRoots.join(', ')})`,
        {
          value: target,
        },
      );
    }
    return root;
  }
}

function nonNegative(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
    throw invalidArgValue(`options.${name}`, v, 'must be a non-negative integer number of milliseconds');
  }
  return v;
}
