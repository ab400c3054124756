// The Sandbox: a pod's storages as Kata's agent keeps them, one entry per mount point,
// reference-counted across containers, serialized per mount point, transactional per request, and
// never forgetting a storage whose cleanup failed. This class is the public face; the table, its
// locks, the request runner and the release are the files beside it.
import { posix } from 'node:path';
import { invalidArgType, invalidArgValue } from '../errors';
import { tracePromise } from '../events';
import type { MountApi } from '../mount';
import { updateEphemeralMounts, type EphemeralUpdate } from '../handlers/ephemeral-update';
import { requestEnded, requestStarted } from '../native';
import { StorageTable, destroyedError, errorsOf, pathArg } from './table';
import { Journal } from './journal';
import { recover } from './recovery';
import type { RecoveryReport } from '../events';
import { add, remove, type AddStoragesOptions } from './request';
import { cleanup, release, retryLeftovers, retryPending } from './release';
import { defaultRegistry, type StorageHandlerRegistry } from '../registry';
import { checkAllowedRoots, type StorageInput } from '../storage';

export type { AddStoragesOptions };

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
  /**
   * An absolute path for the sandbox's journal (on the guest's tmpfs, e.g.
   * /run/kata-containers/storage.journal), so a restarted agent gets its table back: a Sandbox
   * constructed with a journal there reconciles it with the kernel (Sandbox.recovery) before its
   * first call. With it, the calls that change the kernel run one at a time. Default: none,
   * nothing is written. See docs/api.md, "Surviving an agent restart".
   */
  statePath?: string;
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

  /** Where the journal is, when there is one. */
  readonly statePath: string | undefined;
  /**
   * What the journal at `statePath` held and what was done about it, settled before the first
   * call runs; never rejects. Without `statePath`: an empty report with `journal: false`.
   */
  readonly recovery: Promise<RecoveryReport>;

  readonly #table: StorageTable;
  /** With a journal: the calls that change the kernel, one after another. */
  #queue: Promise<unknown>;

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
    const statePath = own('statePath');
    if (statePath !== undefined && typeof statePath !== 'string')
      throw invalidArgType('options.statePath', 'of type string', statePath);
    if (
      statePath !== undefined &&
      (!statePath.startsWith('/') || posix.normalize(statePath) !== statePath || statePath.includes('\0'))
    )
      throw invalidArgValue(
        'options.statePath',
        statePath,
        'must be an absolute, normalized path for the journal file',
      );
    this.statePath = statePath;
    if (statePath === undefined) {
      this.recovery = Promise.resolve(emptyReport());
      this.#queue = this.recovery;
      return;
    }
    // Reading and reconciling is synchronous: the adopted storages are in the table before the
    // constructor returns; undoing what a crash left half-done is what `recovery` waits for.
    const opened = Journal.open(statePath);
    let recovered;
    try {
      recovered = recover(this.#table, opened);
    } catch (err) {
      // The kernel could not be asked (statmount, mountinfo): nothing was changed.
      opened.journal.close();
      throw err;
    }
    const { journal, recovery } = recovered;
    this.#table.journal = journal;
    this.recovery = recovery;
    this.#queue = recovery;
  }

  /**
   * Runs a call that may change the kernel. Without a journal, at once. With one, after the
   * calls before it (and the recovery), with its `begin` record written by the call once it is
   * validated, and its `end` record when it settles, whatever it settles to.
   */
  #call<T>(fn: () => Promise<T>): Promise<T> {
    const journal = this.#table.journal;
    if (journal === undefined) return fn();
    const table = this.#table;
    const run = async (): Promise<T> => {
      const call = { r: 0, touched: table.pendingPaths(), containers: new Set<string>() };
      table.call = call;
      try {
        return await fn();
      } finally {
        table.call = undefined;
        if (call.r !== 0) {
          for (const p of table.pendingPaths()) call.touched.add(p);
          journal.end(call.r, call.touched, call.containers);
        }
        // Retired with nothing left to undo: the journal says so, and its descriptor goes.
        if (table.destroyed && table.entries.size === 0 && table.journal === journal) {
          table.journal = undefined;
          journal.close();
        }
      }
    };
    const done = this.#queue.then(run);
    this.#queue = done.catch(() => undefined);
    return done;
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

  #addStorages(storages: readonly unknown[], opts: AddStoragesOptions): Promise<string[]> {
    return this.#call(async () => {
      requestStarted();
      try {
        return await add(this.#table, storages, opts);
      } finally {
        requestEnded();
      }
    });
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

  #removeContainer(containerId: string): Promise<void> {
    return this.#call(async () => {
      requestStarted();
      try {
        await remove(this.#table, containerId);
      } finally {
        requestEnded();
      }
    });
  }

  /** Kata's add_sandbox_storage: a reference without a mount. True when the entry is new. */
  setSandboxStorage(path: string, shared = false): boolean {
    path = pathArg(path);
    if (this.#table.destroyed) throw destroyedError();
    // Recorded first: if the journal cannot take it, nothing changed.
    this.#table.journal?.ref(path, shared === true);
    return this.#table.reference(path, shared === true);
  }

  /**
   * Drops one reference. True when the count reached zero: an entry with nothing to clean is
   * forgotten; one this sandbox mounted or created stays, marked, until unsetAndRemove, the next
   * release or destroy() cleans it (so nothing leaks).
   */
  unsetSandboxStorage(path: string): boolean {
    path = pathArg(path);
    const gone = this.#table.unreference(path);
    this.#table.journal?.unref(path);
    return gone;
  }

  /** Drops one reference and, when it was the last, unmounts and removes what was created. */
  async unsetAndRemoveSandboxStorage(path: string): Promise<boolean> {
    path = pathArg(path);
    return this.#call(async () => {
      this.#table.begin('release', [], [path]);
      const pendingBefore = this.#table.pendingPaths();
      pendingBefore.delete(path);
      const gone = await release(this.#table, path, 'release', true);
      await retryPending(this.#table, pendingBefore);
      return gone;
    });
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
    return this.#call(() => this.#updateEphemeralMounts(storages));
  }

  #updateEphemeralMounts(storages: readonly StorageInput[]): Promise<EphemeralUpdate[]> {
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

  #destroy(): Promise<void> {
    // Refused from this moment, even with earlier calls still queued before it.
    this.#table.destroyed = true;
    return this.#call(() => this.#destroyNow());
  }

  async #destroyNow(): Promise<void> {
    this.#table.begin('destroy', [], this.#table.entries.keys());
    for (const c of this.#table.containers.keys()) this.#table.call?.containers.add(c);
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

function emptyReport(): RecoveryReport {
  return { journal: false, adopted: [], rolledBack: [], dropped: [], errors: [], tornBytes: 0 };
}

function nonNegative(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
    throw invalidArgValue(`options.${name}`, v, 'must be a non-negative integer number of milliseconds');
  }
  return v;
}
