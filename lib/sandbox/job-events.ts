// The Sandbox's events, published from what its native jobs recorded: the same job runs whether
// anyone listens or not, and these only report it (kata-storage:mount, kata-storage:umount, and the
// tracing channel of each storage of a request).
import { channels, traceRecorded, tracingActive } from '../events';
import type { AppliedStorage, AppliedStorages, NativeStorageJob, ReleaseOutcome } from '../native';
import type { PreparedStorage } from '../storage';
import type { StorageDevice } from '../storage-device';
import type { PlannedStorage, Reason, Taken } from './table';

/** Publishes on `kata-storage:mount` one storage an applyStorages job mounted, or failed to (`error`). */
export function publishJobMount(
  storage: PreparedStorage,
  job: NativeStorageJob,
  { ownershipSkipped, durationNs }: AppliedStorage,
  containerId: string | undefined,
  error: Error | undefined,
): void {
  const withOwnership = job.fsGroup >= 0 || job.fsgid >= 0;
  channels.mount.publish({
    driver: storage.driver,
    source: job.source,
    mountPoint: storage.mountPoint,
    fstype: job.fstype,
    options: job.options,
    containerId,
    ...(withOwnership && ownershipSkipped ? { fsGroupSkipped: 'read-only' as const } : {}),
    durationMs: durationNs / 1e6,
    error,
  });
}

/**
 * Publishes on `kata-storage:umount` the unmounts a failed applyStorages job made undoing itself
 * (timed with the job, so 0 ms each).
 */
export function publishUndone(
  storage: PreparedStorage,
  unmounted: readonly string[],
  containerId: string | undefined,
): void {
  const ids = containerId === undefined ? {} : { containerId };
  for (const path of unmounted) {
    channels.umount.publish({
      driver: storage.driver,
      mountPoint: storage.mountPoint,
      reason: 'rollback',
      ...ids,
      step: 'umount',
      path,
      mount: 'recorded',
      durationMs: 0,
    });
  }
}

/**
 * Publishes on `tracing:kata-storage:storage` each storage the request reached, from what the
 * job recorded: those it made or referenced, and the one that failed with `err`. The same code
 * ran whether or not anyone listens; this only reports it.
 */
export function traceStorages(
  plan: readonly PlannedStorage[],
  made: readonly number[],
  applied: AppliedStorages | undefined,
  containerId: string | undefined,
  taken: readonly Taken[],
  err: unknown,
  at?: number,
): void {
  if (!tracingActive('storage')) return;
  // The storage that failed: the job's, `at` (a device not found), or the first (an owed
  // cleanup). When nothing was made (the job's first pass refused it, or it never ran), that one
  // alone was reached.
  const failedAt =
    err === undefined ? -1 : applied !== undefined && applied.failed >= 0 ? made[applied.failed]! : (at ?? 0);
  const reached = err === undefined ? plan.length : failedAt + 1;
  const madeAny = applied !== undefined && applied.outcomes.some((o) => o.durationNs > 0);
  for (let i = 0; i < reached; i++) {
    if (err !== undefined && !madeAny && i !== failedAt) continue;
    const { storage } = plan[i]!;
    const k = made.indexOf(i);
    const durationMs = k >= 0 && applied !== undefined ? (applied.outcomes[k]?.durationNs ?? 0) / 1e6 : 0;
    const ctx = { driver: storage.driver, mountPoint: storage.mountPoint, containerId, storage };
    if (i === failedAt) traceRecorded('storage', ctx, durationMs, { error: err });
    else {
      const t = taken[i] ?? { path: storage.mountPoint, created: k >= 0 };
      traceRecorded('storage', ctx, durationMs, { result: { held: storage.mountPoint, taken: t } });
    }
  }
}

/**
 * Publishes on `kata-storage:umount` (step 'umount') each unmount a release job made for `e`, and
 * each recorded mount it found already gone. A failure before any unmount (the mount table
 * unreadable, a mount that cannot be reached by its path) is published for the mount it concerned,
 * `failedAt`.
 */
export function publishRelease(
  e: StorageDevice,
  outcome: ReleaseOutcome,
  reason: Reason,
  containerId: string | undefined,
  error: Error | undefined,
  failedAt: string | undefined,
): void {
  const ids = containerId === undefined ? {} : { containerId };
  const base = { driver: e.driver, mountPoint: e.path, reason, ...ids, step: 'umount' as const };
  for (const s of outcome.steps) {
    channels.umount.publish({
      ...base,
      path: s.path,
      mount: s.mount,
      durationMs: s.durationNs / 1e6,
      error: s.error,
    });
  }
  if (error !== undefined && !outcome.steps.some((s) => s.error === error) && failedAt !== undefined) {
    channels.umount.publish({ ...base, path: failedAt, mount: 'recorded', durationMs: 0, error });
  }
}

/** Publishes on `kata-storage:umount` (step 'remove') a directory of `e` its release could not remove. */
export function publishRemoval(
  e: StorageDevice,
  path: string,
  reason: Reason,
  containerId: string | undefined,
  why: Error,
): void {
  channels.umount.publish({
    driver: e.driver,
    mountPoint: e.path,
    reason,
    ...(containerId === undefined ? {} : { containerId }),
    step: 'remove',
    path,
    durationMs: 0,
    error: why,
  });
}
