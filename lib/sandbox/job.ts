// The request runner's fast path: a request whose every storage has steps (StorageHandler.steps)
// is one native job (native/core/storage_steps ApplyStorages), recorded in the table afterwards.
import { join } from 'node:path';
import { abortError, explainMountError } from '../errors';
import { channels } from '../events';
import { mountApiOf } from '../mount';
import { applyStorageJobs, type AppliedStorages, type NativeStorageJob } from '../native';
import { MountFlags, optionElements } from '../options';
import type { StorageSteps } from '../registry';
import { beneathRefusal, type PreparedStorage } from '../storage';
import { StorageDevice } from '../storage-device';
import { publishJobMount, publishUndone, traceStorages } from './job-events';
import { cleanup, release } from './release';
import { destroyedError, errorsOf, type PlannedStorage, type StorageTable, type Taken } from './table';

/**
 * A request whose storages all have steps (StorageHandler.steps), as one native job
 * (native/core/storage_steps ApplyStorages): its mount points are locked together (waiting,
 * holding none, until nobody else holds any); a mount point held already, or twice in the
 * request, only gains a reference, taken once the job succeeded; one whose cleanup is owed is
 * finished first (if that fails, the request fails having taken nothing); the rest are the job.
 * The job checks every walk before touching anything, and on a failure undoes itself: what it
 * could not undo is kept (a mount: a pending entry; a directory: a leftover). The tracing
 * channels and `kata-storage:mount` are published from what the job recorded, after it.
 */
export function addAsOneJob(
  table: StorageTable,
  plan: readonly PlannedStorage[],
  steps: readonly StorageSteps[],
  found: readonly (string | undefined)[],
  containerId: string | undefined,
  signal: AbortSignal | undefined,
): Taken[] | Promise<Taken[]> {
  const paths = plan.length === 1 ? [plan[0]!.storage.mountPoint] : [...new Set(plan.map((p) => p.storage.mountPoint))];
  // Nobody is changing these mount points and none has a cleanup owed: the job starts now.
  if (table.locks.anyLock(paths) === undefined && !table.cleanupOwed(paths)) {
    return runJob(table, plan, steps, found, paths, containerId, signal, false);
  }
  return addWhenFree(table, plan, steps, found, paths, containerId, signal);
}

/** addAsOneJob() once nobody holds a lock on its mount points, with theirs, and owed cleanups finished. */
async function addWhenFree(
  table: StorageTable,
  plan: readonly PlannedStorage[],
  steps: readonly StorageSteps[],
  found: readonly (string | undefined)[],
  paths: readonly string[],
  containerId: string | undefined,
  signal: AbortSignal | undefined,
): Promise<Taken[]> {
  for (let busy = table.locks.anyLock(paths); busy !== undefined; busy = table.locks.anyLock(paths)) await busy;
  if (table.destroyed) throw destroyedError();
  if (signal?.aborted) throw abortError(signal);
  const unlock = table.locks.lockAll(paths);
  try {
    for (const p of paths) {
      const e = table.entries.get(p);
      // Half torn down: finish that first; if it still fails, this request fails too.
      if (e !== undefined && e.refcount === 0 && e.cleanupPending) {
        try {
          await cleanup(table, e, 'release');
        } catch (err) {
          traceStorages(plan, [], undefined, containerId, [], err);
          throw err;
        }
      }
    }
    return await runJob(table, plan, steps, found, paths, containerId, signal, true);
  } finally {
    unlock();
  }
}

/**
 * The job of addAsOneJob() and the references it gives. What runs on this thread is recorded at
 * once (nothing else can run meanwhile). What goes to the pool is recorded when it comes back,
 * its mount points locked until then (unless `locked`: the caller holds them), and given back
 * again if destroy() or the signal came meanwhile.
 */
function runJob(
  table: StorageTable,
  plan: readonly PlannedStorage[],
  steps: readonly StorageSteps[],
  found: readonly (string | undefined)[],
  paths: readonly string[],
  containerId: string | undefined,
  signal: AbortSignal | undefined,
  locked: boolean,
): Taken[] | Promise<Taken[]> {
  const jobs: NativeStorageJob[] = [];
  const made: number[] = [];
  const api = mountApiOf(table.settings.mountApi);
  for (let i = 0; i < plan.length; i++) {
    const path = plan[i]!.storage.mountPoint;
    if (table.entries.has(path) || (made.length > 0 && made.some((k) => plan[k]!.storage.mountPoint === path)))
      continue;
    made.push(i);
    const s = steps[i]!;
    if (s.device === undefined) jobs.push(storageJob(plan[i]!.storage, s, api));
    else if (found[i] !== undefined) jobs.push(storageJob(plan[i]!.storage, { ...s, source: found[i]! }, api));
  }
  // Held when the request started, so its device was not looked for, and released since.
  const late = made.filter((i) => steps[i]!.device !== undefined && found[i] === undefined);
  if (late.length > 0) throw new DevicesNotSought(late);
  // The journal learns of the directories beyond a mount point before they are made.
  for (const job of jobs) for (const d of job.dirs) table.pre(join(d.root, d.rel));
  let r: AppliedStorages | Promise<AppliedStorages> | undefined;
  try {
    if (jobs.length > 0) r = applyStorageJobs(jobs);
  } catch (err) {
    traceStorages(plan, made, undefined, containerId, [], err);
    throw err;
  }
  if (!(r instanceof Promise)) return takeJob(table, plan, steps, made, jobs, r, containerId);
  const unlock = locked ? undefined : table.locks.lockAll(paths);
  return r
    .then(
      (applied) => takeJob(table, plan, steps, made, jobs, applied, containerId),
      (err: unknown) => {
        traceStorages(plan, made, undefined, containerId, [], err);
        throw err;
      },
    )
    .finally(() => unlock?.())
    .then(async (taken) => {
      if (!table.destroyed && !signal?.aborted) return taken;
      // The job could not be interrupted: what it made is given back as a failed request's is.
      for (let i = taken.length - 1; i >= 0; i--) {
        await release(table, taken[i]!.path, 'rollback', taken[i]!.created, containerId).catch(() => undefined);
      }
      throw table.destroyed ? destroyedError() : abortError(signal!);
    });
}

/**
 * Records a job's outcome (recordJob()), then the references of the whole request in its order:
 * the storages the job made, and those held already or twice in the request (one more each).
 */
function takeJob(
  table: StorageTable,
  plan: readonly PlannedStorage[],
  steps: readonly StorageSteps[],
  made: readonly number[],
  jobs: readonly NativeStorageJob[],
  applied: AppliedStorages | undefined,
  containerId: string | undefined,
): Taken[] {
  try {
    if (applied !== undefined) recordJob(table, plan, steps, made, jobs, applied, containerId);
  } catch (err) {
    traceStorages(plan, made, applied, containerId, [], err);
    throw err;
  }
  const taken: Taken[] = [];
  for (let i = 0, k = 0; i < plan.length; i++) {
    const path = plan[i]!.storage.mountPoint;
    if (made[k] === i) {
      k++;
      taken.push({ path, created: true });
    } else {
      table.entries.get(path)!.refcount++;
      taken.push({ path, created: false });
    }
  }
  traceStorages(plan, made, applied, containerId, taken, undefined);
  return taken;
}

/**
 * Records a job's storages (`made`: their indexes in `plan`) in the table, one entry each, with
 * the leftover directories on their way now theirs; after a failure, only what the job could
 * not undo, and the error is thrown with `rollbackErrors`. Publishes `kata-storage:mount`.
 */
function recordJob(
  table: StorageTable,
  plan: readonly PlannedStorage[],
  steps: readonly StorageSteps[],
  made: readonly number[],
  jobs: readonly NativeStorageJob[],
  { outcomes, failed, error, undoErrors, refusal, ranHere }: AppliedStorages,
  containerId: string | undefined,
): void {
  if (refusal !== undefined) throw beneathRefusal(plan[made[failed]!]!.storage.mountPoint, refusal[0], refusal[1]);
  const publish = channels.mount.hasSubscribers;
  for (let k = 0; k < outcomes.length; k++) {
    const { storage, handler } = plan[made[k]!]!;
    const { created, mounted } = outcomes[k]!;
    // The storage that failed, and each that mounted something (undone after a failure). One
    // that mounted nothing accepted a pre-mount, or was never reached: the job's first pass,
    // before anything was touched, stopped it.
    const mountedHere = mounted.length > 0 || outcomes[k]!.unmounted.length > 0;
    if (publish && (k === failed || (mountedHere && (failed < 0 || k < failed)))) {
      publishJobMount(storage, jobs[k]!, outcomes[k]!, containerId, k === failed ? error : undefined);
    }
    const e = new StorageDevice(storage.mountPoint, storage.driver, storage.shared === true);
    e.storage = storage;
    e.handler = handler;
    e.mounts = mounted;
    e.memoryOnly = ranHere;
    const own = steps[made[k]!]!;
    // Its steps are all it did (a disk with dm-verity has none): the release job undoes them, and
    // a removeContainer of many such storages is one release job. A local storage's directory is
    // the storage: its driver's release removes it, and a removal refused (a mount below it)
    // fails the release, as an unmount would, rather than leaving a leftover.
    e.releaseDone = own.directory === undefined;
    if (failed >= 0) {
      if (channels.umount.hasSubscribers) publishUndone(storage, outcomes[k]!.unmounted, containerId);
      // Rolled back by the job: only what it could not undo is left to remember.
      if (mounted.length > 0) {
        e.created = created;
        table.keepUndone(e);
      } else for (const p of created) table.leftovers.set(p, false);
      continue;
    }
    // Directories an earlier storage left behind on the way are this entry's now (shallowest
    // first, before what the job created), so its release removes them and nobody else does.
    const claimed = table.claimLeftovers(storage.mountPoint);
    e.created = claimed.length === 0 ? created : [...claimed, ...created];
    // A directory the steps asked for, made by the job, goes with its content (makeDirectory's rule).
    for (const d of jobs[k]!.dirs) {
      const path = join(d.root, d.rel);
      if (created.includes(path)) e.trees.add(path);
    }
    e.createdMountPoint = e.created.includes(storage.mountPoint);
    const raced = table.entries.get(storage.mountPoint);
    // setSandboxStorage() (synchronous) took a reference while the job ran.
    if (raced) raced.takeOver(e);
    else table.entries.set(storage.mountPoint, e);
  }
  if (failed >= 0) {
    const err = explainMountError(error!, jobs[failed]!.fstype);
    errorsOf(err, 'rollbackErrors', undoErrors);
    throw err;
  }
}

/**
 * Thrown by addAsOneJob() before anything is touched: the storages `at` (indexes in the plan) are
 * to be made, but their devices were not looked for (each mount point was held when the request
 * started). The caller finds them and runs the job again.
 */
export class DevicesNotSought {
  constructor(readonly at: readonly number[]) {}
}

/** Each storage's steps, when every one of the request has them; undefined otherwise. */
export function stepsOf(plan: readonly PlannedStorage[]): StorageSteps[] | undefined {
  const out: StorageSteps[] = [];
  for (const { storage, handler } of plan) {
    const steps = handler.steps?.(storage);
    if (steps === undefined) return undefined;
    out.push(steps);
  }
  return out;
}

/**
 * One storage's element of an applyStorages job: where its mount point lies, the mount `steps`
 * describe, then the storage's fsGroup (ro bits when it asked for `ro`) and the steps' fsgid.
 */
export function storageJob(storage: PreparedStorage, steps: StorageSteps, api: number): NativeStorageJob {
  const fsGroup = storage.fsGroup;
  return {
    root: storage.placement.root,
    rel: storage.placement.rel,
    leafFile: steps.file === true,
    source: steps.source,
    sourceBlock: steps.device === 'block',
    acceptPremount: steps.premount === true,
    dirs: steps.directories ?? [],
    directoryOnly: steps.directory !== undefined,
    mode: steps.directory?.mode ?? -1,
    fstype: steps.fstype,
    options: optionElements(steps.options),
    api,
    fsGroup: fsGroup === undefined ? -1 : fsGroup.groupId,
    fsGroupReadOnly: (storage.mountOptions.flags & MountFlags.RDONLY) !== 0,
    onRootMismatch: fsGroup?.groupChangePolicy === 'OnRootMismatch',
    fsgid: steps.fsgid ?? -1,
  };
}
