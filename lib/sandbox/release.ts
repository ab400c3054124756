// Giving references back: the last reference of a storage ends it through one native release job
// (its recorded mounts, newest first, then the directories this sandbox created); a cleanup that
// fails leaves the entry held by nobody and marked, retried by the next release, add or destroy().
import { native, releaseStorageJobs, type ReleaseOutcome } from '../native';
import { channels } from '../events';
import type { StorageDevice } from '../storage-device';
import { publishRelease, publishRemoval } from './job-events';
import { notFound, type Reason, type StorageTable, type Taken } from './table';

/**
 * removeContainer's references as one native release job, when each either only drops a count
 * or ends a storage whose cleanup is its recorded mounts and paths alone (no driver release owed,
 * nothing pending) and none is being changed. The entries to clean, newest first; undefined
 * otherwise (then each reference goes through release(), whose cleanup is the same native job
 * for one storage).
 */
export function releaseJobs(table: StorageTable, refs: readonly Taken[]): StorageDevice[] | undefined {
  const drops = new Map<string, number>();
  for (const r of refs) drops.set(r.path, (drops.get(r.path) ?? 0) + 1);
  const ending: StorageDevice[] = [];
  for (const [path, n] of drops) {
    const e = table.entries.get(path);
    if (e === undefined || table.locks.has(path) || n > e.refcount) return undefined;
    if (n < e.refcount || e.shared) continue;
    if (!e.releasedByJob || e.cleanupError || e.cleanupPending) return undefined;
    ending.push(e);
  }
  // Newest first, as the references are given back one by one.
  const order = new Map(refs.map((r, i) => [r.path, i]));
  for (const [path, n] of drops) {
    const e = table.entries.get(path)!;
    e.refcount -= n;
  }
  return ending.sort((a, b) => order.get(b.path)! - order.get(a.path)!);
}

/** Runs releaseJobs()' entries in one job and settles each as cleanup() would have. */
export async function releaseAsOneJob(
  table: StorageTable,
  ending: StorageDevice[],
  errors: Error[],
  containerId: string | undefined,
): Promise<void> {
  if (ending.length === 0) return;
  await table.locks.whileLocked(
    ending.map((e) => e.path),
    () =>
      releaseStorageJobs(
        ending,
        table.settings.umountBusyTimeoutMs,
        ending.every((e) => e.memoryOnly),
      ),
    (outcomes) => {
      for (let i = 0; i < ending.length; i++) {
        const error = settle(table, ending[i]!, outcomes[i]!, 'release', containerId);
        if (error !== undefined) errors.push(error);
      }
    },
  );
  await retryLeftovers(table);
}

/** Drops a reference under the mount point's lock; cleans up when it was the last. */
export function release(
  table: StorageTable,
  path: string,
  reason: Reason,
  evenShared: boolean,
  containerId?: string,
): Promise<boolean> {
  return table.locks.withLock(path, async () => {
    const e = table.entries.get(path);
    if (!e) throw notFound(path);
    if (e.refcount > 0) e.refcount--;
    if (e.refcount > 0) return false;
    // A shared storage outlives its containers; only destroy(), an explicit remove or the
    // rollback of the request that made it take it down.
    if (e.shared && !evenShared) return true;
    await cleanup(table, e, reason, containerId);
    return true;
  });
}

/**
 * Retries the cleanups in `paths` that are still pending (those the caller did not just attempt:
 * each unmount waits at most umountBusyTimeoutMs once per call), then the leftover directories.
 */
export async function retryPending(table: StorageTable, paths: ReadonlySet<string>): Promise<void> {
  for (const path of paths) {
    if (table.entries.get(path)?.cleanupPending !== true) continue;
    await table.locks.withLock(path, async () => {
      const e = table.entries.get(path);
      if (!e || !e.cleanupPending) return;
      if (e.refcount > 0) {
        e.cleanupPending = false;
        return;
      }
      await cleanup(table, e, 'release').catch(() => undefined);
    });
  }
  await retryLeftovers(table);
}

/**
 * Records a release job's outcome for `e` (StorageDevice.settle) in the table: a failed release
 * keeps it, held by nobody and marked, and is returned; otherwise it goes, and the paths the job
 * could not remove become leftovers. Each unmount the job made (and each recorded mount it found
 * already gone) is published on kata-storage:umount, step 'umount'; a failed removal is published
 * as step 'remove', unless it is a parent still holding another storage's directory, the normal
 * case.
 */
function settle(
  table: StorageTable,
  e: StorageDevice,
  outcome: ReleaseOutcome,
  reason: Reason,
  containerId?: string,
): Error | undefined {
  const failedAt = outcome.error === undefined ? undefined : e.mounts[outcome.mountsLeft - 1]?.path;
  const { error, leftovers } = e.settle(outcome);
  const inTable = table.entries.get(e.path) === e;
  if (channels.umount.hasSubscribers) publishRelease(e, outcome, reason, containerId, error, failedAt);
  if (error !== undefined) {
    if (inTable) e.cleanupPending = true;
    return error;
  }
  e.cleanupPending = false;
  if (inTable) table.entries.delete(e.path);
  for (const [p, why] of leftovers) {
    const tree = e.trees.has(p);
    table.leftovers.set(p, tree);
    const code = (why as { code?: string }).code;
    if ((code === 'ENOTEMPTY' || code === 'EEXIST') && p !== e.path && !tree) continue;
    if (channels.umount.hasSubscribers) publishRemoval(e, p, reason, containerId, why);
  }
  return undefined;
}

/**
 * Undoes what the entry's creation did. Essential, in order: the driver's own release (e.g.
 * `local` removing its directory), then one native release job (native/core/release.h): each
 * recorded mount, newest first, with whatever sits on or beneath it; a mount already gone counts
 * as released. If either fails the entry stays, held by nobody and marked (cleanupPending), with
 * the mounts still there, and the error is thrown. Best effort, once the mounts are gone, in the
 * same job: removing the paths this sandbox created (a makeDirectory tree with its content). A
 * failure there (EROFS, EBUSY, EACCES, ENOTEMPTY) is published on kata-storage:umount (step
 * 'remove') and the path is kept as a leftover, retried later; the release itself succeeds and
 * the entry goes. The same job runs whether anyone subscribes or not: the events are published
 * from what it recorded.
 */
export async function cleanup(
  table: StorageTable,
  e: StorageDevice,
  reason: Reason,
  containerId?: string,
): Promise<void> {
  try {
    if (e.handler?.release && !e.releaseDone && e.storage) {
      await e.handler.release(e.path, {
        driver: e.driver,
        storage: e.storage,
        createdMountPoint: e.createdMountPoint,
      });
      e.releaseDone = true;
    }
  } catch (err) {
    e.cleanupError = err as Error;
    if (table.entries.get(e.path) === e) e.cleanupPending = true;
    throw err;
  }
  const [outcome] = await releaseStorageJobs([e], table.settings.umountBusyTimeoutMs, e.memoryOnly);
  const error = settle(table, e, outcome!, reason, containerId);
  if (error !== undefined) throw error;
  await retryLeftovers(table);
}

/**
 * Removes leftover directories that can go now (deepest first). A mount point directory is
 * removed only when empty, so one that kept content keeps it; a makeDirectory tree (overlay
 * upper/work) goes with its content, as its release would have done, once nothing is mounted
 * in it (removeTree checks the whole tree first). A path some entry holds is never touched.
 */
export async function retryLeftovers(table: StorageTable): Promise<void> {
  if (table.leftovers.size === 0) return;
  const held = new Set<string>();
  for (const x of table.entries.values()) {
    held.add(x.path);
    for (const tree of x.trees) held.add(tree);
  }
  for (const dir of [...table.leftovers.keys()].sort((a, b) => b.length - a.length)) {
    // Claimed by an add while an earlier removal was in flight: it is that storage's now.
    if (held.has(dir) || !table.leftovers.has(dir)) continue;
    const r = table.leftovers.get(dir) ? await native.removeTree(dir) : await native.removeEntry(dir);
    if (r === undefined || (r as NodeJS.ErrnoException).code === 'ENOENT') table.leftovers.delete(dir);
  }
}
