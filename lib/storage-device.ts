// One storage the sandbox holds, as Kata's agent names it (StorageDevice): who holds it, what was
// made for it, in order, so that its cleanup undoes exactly that, and whether that cleanup is
// still owed. The sandbox's table maps mount points to these; nothing about a storage lives
// anywhere else.
import type { StorageHandler } from './handler';
import type { MountRecord, ReleaseOutcome } from './native';
import type { Storage } from './storage';

export class StorageDevice {
  refcount = 1;
  storage?: Storage;
  handler?: StorageHandler;
  /**
   * The driver's own release ran (it is not repeated when an unmount after it failed), or none is
   * owed: a storage a job made from its steps is exactly what the job recorded.
   */
  releaseDone = false;
  /**
   * The mounts this sandbox made for it, in order, each by its path and mount ID: release
   * unmounts exactly these and what came to sit on or beneath them (native/core/release.h).
   */
  mounts: MountRecord[] = [];
  /** Paths this sandbox created (directories, or a bind target file), in creation order. */
  created: string[] = [];
  /** Directories made with makeDirectory (overlay upper/work): removed with their content. */
  trees = new Set<string>();
  createdMountPoint = false;
  /**
   * Its mounts are memory-only ones (tmpfs, ramfs) made on the calling thread: its release job
   * may run there too (releaseStorageJobs' `here`).
   */
  memoryOnly = false;
  /**
   * Held by nobody, and its cleanup failed or was deferred: the next release, add of this mount
   * point or destroy() finishes it (StorageInfo.cleanupPending).
   */
  cleanupPending = false;
  /** Why the last cleanup failed. */
  cleanupError?: Error;

  constructor(
    readonly path: string,
    readonly driver: string,
    public shared: boolean,
  ) {}

  /** Nothing to undo: no mount, no path made, no driver release owed. */
  get empty(): boolean {
    return this.mounts.length === 0 && this.created.length === 0 && !this.handler?.release;
  }

  /**
   * Whether its cleanup is exactly its recorded mounts and paths, so a release job shared with
   * other storages can do it: no driver release (JS, run before the job) still owed.
   */
  get releasedByJob(): boolean {
    return !(this.handler?.release && !this.releaseDone);
  }

  /**
   * Becomes `made` (an entry created while setSandboxStorage() took a reference here): its record,
   * with both references.
   */
  takeOver(made: StorageDevice): void {
    this.refcount += made.refcount;
    this.shared ||= made.shared;
    this.storage = made.storage;
    this.handler = made.handler;
    this.releaseDone = made.releaseDone;
    this.mounts = made.mounts;
    this.created = made.created;
    this.trees = made.trees;
    this.createdMountPoint = made.createdMountPoint;
    this.memoryOnly = made.memoryOnly;
  }

  /** Adds what a failed rollback of `undone` left mounted or created to this entry's record. */
  absorb(undone: StorageDevice): void {
    this.memoryOnly =
      (this.mounts.length === 0 || this.memoryOnly) && (undone.mounts.length === 0 || undone.memoryOnly);
    this.mounts.push(...undone.mounts);
    this.created.push(...undone.created);
    for (const tree of undone.trees) this.trees.add(tree);
  }

  /**
   * Records what a release job did: on a failed unmount, the mounts left (and the error, which is
   * returned); otherwise nothing is left but the created paths it could not remove, returned as
   * [path, why] for the sandbox's leftovers.
   */
  settle(outcome: ReleaseOutcome): { error?: Error; leftovers: [string, Error][] } {
    const { error, mountsLeft, leftovers, leftoverErrors } = outcome;
    if (error !== undefined) {
      this.mounts.length = mountsLeft;
      this.cleanupError = error;
      return { error, leftovers: [] };
    }
    this.mounts.length = 0;
    this.created.length = 0;
    return { leftovers: leftovers.map((p, k) => [p, leftoverErrors[k]!]) };
  }
}
