// The sandbox's storage table: one entry per mount point, reference-counted across containers,
// the references each container took, and the directories whose removal is still owed. Everything
// here runs synchronously; what waits (the locks, the jobs) lives beside it.
import { posix } from 'node:path';
import { StorageError, invalidArgType } from '../errors';
import type { MountApi } from '../mount';
import type { StorageHandler, StorageHandlerRegistry } from '../registry';
import { StorageDevice } from '../storage-device';
import { withoutTrailingSlash, type Placement, type PreparedStorage } from '../storage';
import type { TableJournal } from './journal-records';
import { MountPointLocks } from './locks';

/** Why an entry is being cleaned up, as kata-storage:umount reports it. */
export type Reason = 'release' | 'rollback' | 'destroy';

/** One storage of a request once validated: its prepared form, where it goes, and its driver. */
export interface PlannedStorage {
  storage: PreparedStorage;
  placement: Placement;
  handler: StorageHandler;
}

/** One reference a request took: `created` when the request made the storage (not only counted it). */
export interface Taken {
  path: string;
  created: boolean;
}

/** What the parts read of the Sandbox's settings (its public readonly fields). */
export interface SandboxSettings {
  readonly allowedRoots: readonly string[];
  readonly sysfsRoot: string;
  readonly devRoot: string;
  readonly hotplugTimeoutMs: number;
  readonly umountBusyTimeoutMs: number;
  readonly registry: StorageHandlerRegistry;
  readonly mountApi: MountApi | undefined;
  readonly watchIntervalMs: number;
}

/** Its per-storage information, as Sandbox.storages() reports it. */
export interface EntryInfo {
  refcount: number;
  driver: string;
  shared: boolean;
  cleanupPending: boolean;
}

/** A journaled call in progress: its number once it began, and what its `end` record holds. */
export interface JournalCall {
  r: number;
  touched: Set<string>;
  containers: Set<string>;
}

/** The state a Sandbox owns; shared by the files of this folder and by nobody else. */
export class StorageTable {
  readonly entries = new Map<string, StorageDevice>();
  readonly containers = new Map<string, Taken[]>();
  readonly locks = new MountPointLocks();
  /**
   * Directories we created that could not be removed when their storage went (not empty: another
   * storage lives below; or EROFS/EBUSY/EACCES): removed by later releases and destroy(), or
   * taken over by the next storage made there. True for a makeDirectory tree (removed with its
   * content).
   */
  readonly leftovers = new Map<string, boolean>();
  destroyed = false;
  /** With `statePath`: the journal, and the call in progress (calls then run one at a time). */
  journal: TableJournal | undefined;
  call: JournalCall | undefined;

  constructor(readonly settings: SandboxSettings) {}

  /**
   * With a journal, a call that changes the kernel begins: its `begin` record names the mount
   * points it may create; its `end` will hold `touches` and `containerId`. Throws ERR_JOURNAL,
   * before anything is touched.
   */
  begin(op: string, creates: Iterable<string>, touches: Iterable<string>, containerId?: string): void {
    const call = this.call;
    if (this.journal === undefined || call === undefined) return;
    call.r = this.journal.begin(op, creates);
    for (const p of touches) call.touched.add(p);
    if (containerId !== undefined) call.containers.add(containerId);
  }

  /** With a journal, before a driver's create() makes `path`, a target beyond its mount point. */
  pre(path: string): void {
    if (this.call !== undefined && this.call.r !== 0) this.journal!.pre(this.call.r, path);
  }

  /** Adds a request's references to its container's, so removeContainer gives back exactly them. */
  holdFor(containerId: string | undefined, taken: Taken[]): void {
    if (containerId === undefined) return;
    const refs = this.containers.get(containerId);
    if (refs) for (const t of taken) refs.push(t);
    else this.containers.set(containerId, taken);
  }

  /** Kata's add_sandbox_storage: a reference without a mount. True when the entry is new. */
  reference(path: string, shared: boolean): boolean {
    if (this.destroyed) throw destroyedError();
    const e = this.entries.get(path);
    if (e) {
      e.refcount++;
      return false;
    }
    this.entries.set(path, new StorageDevice(path, '', shared));
    return true;
  }

  /**
   * Drops one reference. True when the count reached zero: an entry with nothing to clean is
   * forgotten; one this sandbox mounted or created stays, marked, for a later cleanup.
   */
  unreference(path: string): boolean {
    const e = this.entries.get(path);
    if (!e || (e.refcount === 0 && !e.cleanupError && !e.cleanupPending)) throw notFound(path);
    if (e.refcount > 0) e.refcount--;
    if (e.refcount > 0) return false;
    if (e.empty) this.entries.delete(path);
    else e.cleanupPending = true;
    return true;
  }

  /** A copy of each entry's count and marks, keyed by mount point. */
  info(): Map<string, EntryInfo> {
    const m = new Map<string, EntryInfo>();
    for (const [p, e] of this.entries) {
      m.set(p, {
        refcount: e.refcount,
        driver: e.driver,
        shared: e.shared,
        cleanupPending: e.cleanupPending,
      });
    }
    return m;
  }

  /** An entry whose rollback failed: held by nobody, marked for cleanup (merged into a raced entry). */
  keepUndone(e: StorageDevice): void {
    const raced = this.entries.get(e.path);
    if (raced && raced !== e) {
      // setSandboxStorage() took a reference meanwhile: what is still mounted becomes that entry's.
      raced.absorb(e);
      return;
    }
    e.refcount = 0;
    e.cleanupPending = true;
    this.entries.set(e.path, e);
  }

  /** True when one of `paths` is an entry held by nobody whose cleanup is still owed. */
  cleanupOwed(paths: readonly string[]): boolean {
    for (const p of paths) {
      const e = this.entries.get(p);
      if (e !== undefined && e.refcount === 0 && e.cleanupPending) return true;
    }
    return false;
  }

  /** The mount points whose cleanup is owed (StorageDevice.cleanupPending). */
  pendingPaths(): Set<string> {
    const paths = new Set<string>();
    for (const e of this.entries.values()) if (e.cleanupPending) paths.add(e.path);
    return paths;
  }

  /** Leftover directories at or above `path`, shallowest first, taken out of the leftover set. */
  claimLeftovers(path: string): string[] {
    if (this.leftovers.size === 0) return [];
    const claimed: string[] = [];
    for (let dir = path; dir !== '/' && dir !== '.'; dir = posix.dirname(dir)) {
      if (this.leftovers.delete(dir)) claimed.unshift(dir);
    }
    return claimed;
  }
}

/** Attaches `errors` (rollbackErrors, cleanupErrors) to the error a call rejects with. */
export const errorsOf = (err: unknown, key: string, errors: Error[]): void => {
  if (errors.length > 0 && typeof err === 'object' && err !== null) (err as Record<string, unknown>)[key] = errors;
};

export function destroyedError(): StorageError {
  return new StorageError('ERR_SANDBOX_DESTROYED', 'the sandbox was destroyed; create a new Sandbox to add storages', {
    value: 'destroyed',
  });
}

export function notFound(path: string): StorageError {
  return new StorageError('ERR_STORAGE_NOT_FOUND', `the sandbox holds no storage at ${path}`, { value: path });
}

/** A path argument as the table keys it: one trailing '/' is the same directory, as in a request. */
export function pathArg(path: unknown): string {
  if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
  return withoutTrailingSlash(path);
}
