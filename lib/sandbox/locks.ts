// Per-mount-point serialization: whoever changes a mount point's entry (creates, references,
// releases, remounts it) holds that mount point's lock; a request made of one native job locks all
// its mount points together.

/**
 * The sandbox's locks, one per mount point being changed: a promise that settles when its holder is
 * done. A mount point is absent when nobody holds it (an empty map costs the unlocked fast path
 * nothing).
 */
export class MountPointLocks {
  readonly #locks = new Map<string, Promise<void>>();

  /** Runs `fn` once every earlier holder of `path` is done, holding it until `fn` settles. */
  async withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(path) ?? Promise.resolve();
    let unlock!: () => void;
    const mine = new Promise<void>((r) => (unlock = r));
    const tail = prev.then(() => mine);
    this.#locks.set(path, tail);
    await prev;
    try {
      return await fn();
    } finally {
      unlock();
      if (this.#locks.get(path) === tail) this.#locks.delete(path);
    }
  }

  /** Locks `paths` (none may be locked) until the returned function is called. */
  lockAll(paths: readonly string[]): () => void {
    let unlock!: () => void;
    const lock = new Promise<void>((r) => (unlock = r));
    for (const p of paths) this.#locks.set(p, lock);
    return () => {
      unlock();
      for (const p of paths) if (this.#locks.get(p) === lock) this.#locks.delete(p);
    };
  }

  /** A lock held on one of `paths`, to wait for; undefined when none is. */
  anyLock(paths: readonly string[]): Promise<void> | undefined {
    if (this.#locks.size === 0) return undefined;
    for (const p of paths) {
      const l = this.#locks.get(p);
      if (l !== undefined) return l;
    }
    return undefined;
  }

  /** True while somebody holds `path`. */
  has(path: string): boolean {
    return this.#locks.has(path);
  }

  /** The mount points somebody holds now. */
  held(): IterableIterator<string> {
    return this.#locks.keys();
  }

  /**
   * Runs one job for mount points nobody holds a lock on (the caller checked), then `record`s its
   * result in the table. A job that ran on this thread is recorded at once (nothing else ran
   * meanwhile); one that went to the pool keeps them locked, as withLock would lock each, until
   * both are done.
   */
  whileLocked<T, R>(paths: readonly string[], job: () => T | Promise<T>, record: (result: T) => R): R | Promise<R> {
    const r = job();
    if (!(r instanceof Promise)) return record(r);
    const unlock = this.lockAll(paths);
    return r.then(record).finally(unlock);
  }
}
