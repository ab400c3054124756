// A Sandbox's storage jobs as they cross to the addon: one string of NUL-ended fields and one
// Float64Array each way (per storage a dozen Node-API conversions would cost more than its mkdirat
// and mount), and when a memory-only job may run on the calling thread.
import { constants } from 'node:os';
import { systemError } from '../errors';
import { native, type AppliedTuple, type ReleasedTuple } from './binding';

const { ENOENT, ENOTDIR } = constants.errno;

/**
 * One storage of an applyStorages job (native/core/storage_steps.h StorageJob): where its mount
 * point lies, what to mount (option elements as the request gave them, each NUL-free), then
 * fsGroup (-1: none) with its ro bits and policy, and the ephemeral fsgid (-1: none).
 */
export interface NativeStorageJob {
  root: string;
  rel: string;
  /** The mount point is a file (a device node is bound onto it). */
  leafFile: boolean;
  source: string;
  /** The source is a disk a device lookup found: the job checks it is a block device node first. */
  sourceBlock: boolean;
  /** A mount of this source and fstype already at the mount point is accepted as it is. */
  acceptPremount: boolean;
  /** Directories made beneath their roots before the mount (overlayfs's upperdir, workdir). */
  dirs: readonly { root: string; rel: string }[];
  /**
   * Kata's local storage: nothing is mounted; the directory gets fsgid (chown), mode (with
   * setgid when fsgid is set), then fsGroup.
   */
  directoryOnly: boolean;
  /** local's mode= (-1: none). */
  mode: number;
  fstype: string;
  options: readonly string[];
  /** 0 auto, 1 new, 2 legacy. */
  api: number;
  fsGroup: number;
  fsGroupReadOnly: boolean;
  onRootMismatch: boolean;
  fsgid: number;
}

/**
 * A mount the package made, by identity: its path and its mount ID (statx STATX_MNT_ID_UNIQUE on
 * Linux 6.8+, else STATX_MNT_ID, else mountinfo's; 0 when unknown, then it is released by path).
 */
export interface MountRecord {
  path: string;
  id: number;
}

/** One storage of an applyStorages job as it came out: what is in place, in order. */
export interface AppliedStorage {
  /** The paths it created (directories, or the file a device is bound onto), in order. */
  created: string[];
  /** The mounts it made, in order, each by its path and mount ID. */
  mounted: MountRecord[];
  /** The mount came out read-only (statvfs ST_RDONLY), so fsGroup/fsgid were skipped. */
  ownershipSkipped: boolean;
  /** How long its steps took, in nanoseconds. */
  durationNs: number;
  /** What a rollback unmounted again, newest first (the job failed at this storage or a later one). */
  unmounted: string[];
}

/** What applyStorageJobs reports: per storage what is in place, and why it stopped, if it did. */
export interface AppliedStorages {
  outcomes: AppliedStorage[];
  /** The storage that failed (the job undid it and those before it), or -1. */
  failed: number;
  error?: Error;
  /** What the undo could not undo. */
  undoErrors: Error[];
  /** A symlink or non-directory on a mount point's way: nothing was touched. */
  refusal?: [stop: 'symlink' | 'notdir', path: string];
  /**
   * The job ran on the calling thread (every step memory-only, native/core CannotBlock), so its
   * release may too (releaseStorageJobs' `here`).
   */
  ranHere: boolean;
}

/**
 * One unmount a release job made, or the finding that a recorded mount was already gone:
 * 'recorded' the storage's own mount, 'descendant' one mounted on or beneath it (unmounted
 * first), 'gone' the recorded mount was no longer mounted (released, nothing unmounted).
 */
export interface UnmountStep {
  mount: 'recorded' | 'descendant' | 'gone';
  path: string;
  durationNs: number;
  error?: Error;
}

/** What releaseStorageJobs reports for one storage (StorageDevice.settle reads it). */
export interface ReleaseOutcome {
  /** The release that failed: the entry keeps `mountsLeft` mounts, newest last. */
  error?: Error;
  mountsLeft: number;
  /** Created paths that could not be removed, each with why. */
  leftovers: string[];
  leftoverErrors: Error[];
  /** Every unmount made, in order. */
  steps: UnmountStep[];
  durationNs: number;
}

/** One storage for releaseStorageJobs: its mounts and the paths it created, as recorded. */
export interface StorageReleaseJob {
  mounts: readonly MountRecord[];
  created: readonly string[];
  /** Created paths that are trees (ctx.makeDirectory's), removed with their content. */
  trees?: ReadonlySet<string>;
}

const STEP_KINDS = ['recorded', 'descendant', 'gone'] as const;

/** A field of a job as it crosses: NUL ends fields there, so none may hold one. */
function refuseNul(v: string): string {
  if (v.includes('\0')) throw new TypeError(`a storage job field must not contain NUL bytes: ${JSON.stringify(v)}`);
  return v;
}

/**
 * When memory-only jobs run on this thread. Only for a request alone: with other requests in
 * flight the loop has their completions to serve, and the pool runs the work beside it instead
 * of in front of it (measured: 50 containers cycling at once, the soak, kept their event-loop
 * delay only this way). And only for HERE_BUDGET_MS per turn of the event loop: a caller
 * chaining requests with `await` alone never hands the loop back, so past the budget the next
 * job waits for the loop's next turn (setImmediate), where the budget is renewed, and runs then.
 */
const HERE_BUDGET_MS = 1;
let hereSpentMs = 0;
let renewQueued = false;
let requestsInFlight = 0;

/**
 * A Sandbox request (addStorages, removeContainer) starts: until requestEnded(), jobs of other
 * requests started meanwhile go to the pool.
 */
export function requestStarted(): void {
  requestsInFlight++;
}

export function requestEnded(): void {
  requestsInFlight--;
}

/** True: run here; false: on the pool; undefined: here, once the loop had its turn. */
function mayRunHere(): boolean | undefined {
  if (requestsInFlight > 1) return false;
  return hereSpentMs < HERE_BUDGET_MS ? true : undefined;
}

/** Resolves on the loop's next turn, after the budget was renewed (queued before this). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function spentHere(started: number): void {
  hereSpentMs += performance.now() - started;
  if (renewQueued) return;
  renewQueued = true;
  setImmediate(renewHereBudget).unref();
}

function renewHereBudget(): void {
  hereSpentMs = 0;
  renewQueued = false;
}

/** The numbers of one storage in an applyStorages call (native/binding/mount.cc ApplyStorages). */
const PER_JOB = 12;

/**
 * Runs a request's storages as one native job (native/core/storage_steps ApplyStorages). The
 * jobs cross as one string of NUL-ended fields and one Float64Array: per storage a dozen
 * Node-API conversions cost more than its mkdirat and mount. A request whose every step is
 * memory-only runs on this thread (within HERE_BUDGET_MS per turn of the event loop) and its
 * result is returned as it is; any other goes to the addon's pool and comes back through a promise.
 */
export function applyStorageJobs(jobs: readonly NativeStorageJob[]): AppliedStorages | Promise<AppliedStorages> {
  let fields = '';
  const numbers = new Float64Array(PER_JOB * jobs.length);
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i]!;
    fields += `${refuseNul(job.root)}\0${refuseNul(job.rel)}\0${refuseNul(job.source)}\0${refuseNul(job.fstype)}\0`;
    for (const o of job.options) fields += `${refuseNul(o)}\0`;
    for (const d of job.dirs) fields += `${refuseNul(d.root)}\0${refuseNul(d.rel)}\0`;
    const x = PER_JOB * i;
    numbers[x] = +job.leafFile;
    numbers[x + 1] = job.api;
    numbers[x + 2] = job.fsGroup;
    numbers[x + 3] = +job.fsGroupReadOnly;
    numbers[x + 4] = +job.onRootMismatch;
    numbers[x + 5] = job.fsgid;
    numbers[x + 6] = job.options.length;
    numbers[x + 7] = +job.sourceBlock;
    numbers[x + 8] = +job.acceptPremount;
    numbers[x + 9] = job.dirs.length;
    numbers[x + 10] = +job.directoryOnly;
    numbers[x + 11] = job.mode;
  }
  const here = mayRunHere();
  if (here === undefined) return nextTurn().then(() => runApply(fields, numbers, true));
  return runApply(fields, numbers, here);
}

function runApply(fields: string, numbers: Float64Array, here: boolean): AppliedStorages | Promise<AppliedStorages> {
  const started = performance.now();
  const r = native.applyStorages(fields, numbers, here);
  if (r instanceof Promise) return r.then((t) => applied(t, false));
  spentHere(started);
  return applied(r, true);
}

function applied(
  [counts, paths, failed, error, undoErrors, refusal, mountIds]: AppliedTuple,
  ranHere: boolean,
): AppliedStorages {
  const all = paths.split('\0');
  let at = 0;
  let mounts = 0;
  const outcomes: AppliedStorage[] = [];
  for (let i = 0; i < counts.length; i += 5) {
    const created = all.slice(at, (at += counts[i]!));
    const mounted = all.slice(at, (at += counts[i + 1]!)).map((path) => ({ path, id: mountIds?.[mounts++] ?? 0 }));
    const unmounted = counts[i + 4] === 0 ? [] : all.slice(at, (at += counts[i + 4]!));
    outcomes.push({ created, mounted, ownershipSkipped: counts[i + 2] === 1, durationNs: counts[i + 3]!, unmounted });
  }
  return { outcomes, failed, error, undoErrors: undoErrors ?? [], refusal, ranHere };
}

/**
 * Releases storages as one native job (native/core/release.h ReleaseStorages): per storage its
 * mounts by identity, newest first, each with whatever sits on or beneath it, then its paths.
 * `here`: their mounts are memory-only ones an applyStorageJobs ran on this thread (ranHere); with
 * no EBUSY retry to sleep through (busyTimeoutMs 0), no tree to remove, and each recorded mount
 * still the one on top at its path (nothing of someone else's stacked on it, native/core/release.h
 * RecordedOnTop), the release runs here too. Otherwise it goes to the pool. Either way the
 * outcomes come through a promise (settled at once when it ran here). Throws a TypeError at once
 * for a path holding a NUL.
 */
export function releaseStorageJobs(
  list: readonly StorageReleaseJob[],
  busyTimeoutMs: number,
  here = false,
): Promise<ReleaseOutcome[]> {
  let fields = '';
  const numbers = new Float64Array(2 * list.length);
  const perPath: number[] = [];
  list.forEach(({ mounts, created, trees }, i) => {
    for (const m of mounts) {
      fields += `${refuseNul(m.path)}\0`;
      perPath.push(m.id);
    }
    for (const p of created) {
      fields += `${refuseNul(p)}\0`;
      perPath.push(trees?.has(p) === true ? 1 : 0);
    }
    numbers[2 * i] = mounts.length;
    numbers[2 * i + 1] = created.length;
  });
  const mayHere = here ? mayRunHere() : false;
  if (mayHere === undefined)
    return nextTurn().then(() => runRelease(fields, numbers, perPath, busyTimeoutMs, true, list.length));
  return runRelease(fields, numbers, perPath, busyTimeoutMs, mayHere, list.length);
}

function runRelease(
  fields: string,
  numbers: Float64Array,
  perPath: readonly number[],
  busyTimeoutMs: number,
  here: boolean,
  storages: number,
): Promise<ReleaseOutcome[]> {
  const started = performance.now();
  const r = native.releaseStorages(fields, numbers, Float64Array.from(perPath), busyTimeoutMs, here);
  // Run here or handed to the pool, it comes back through a promise (settled already when it ran
  // here); the time it took on this thread counts against the turn's budget either way.
  if (here) spentHere(started);
  return r.then((t) => released(t, storages));
}

function released(
  [counts, leftovers, errors, leftoverErrors, steps, stepPaths, stepErrors]: ReleasedTuple,
  storages: number,
): ReleaseOutcome[] {
  const all = leftovers.split('\0');
  const paths = stepPaths.split('\0');
  let at = 0;
  let step = 0;
  const outcomes: ReleaseOutcome[] = [];
  for (let i = 0; i < storages; i++) {
    const n = counts[4 * i + 1]!;
    const done: UnmountStep[] = [];
    for (const end = step + counts[4 * i + 3]!; step < end; step++) {
      const error = stepErrors?.[step];
      done.push({
        mount: STEP_KINDS[steps[2 * step]!]!,
        path: paths[step]!,
        durationNs: steps[2 * step + 1]!,
        ...(error === undefined ? {} : { error }),
      });
    }
    const error = errors?.[i];
    outcomes.push({
      ...(error === undefined ? {} : { error }),
      mountsLeft: counts[4 * i]!,
      leftovers: all.slice(at, at + n),
      leftoverErrors: leftoverErrors?.slice(at, at + n) ?? [],
      steps: done,
      durationNs: counts[4 * i + 2]!,
    });
    at += n;
  }
  return outcomes;
}

/**
 * Whether each recorded mount is still in place, as a restarted process finds it
 * (native/core/release.h RecordedMountsPresent): the mount with its ID, at its path. One read of
 * /proc/self/mountinfo. Throws the system error (statmount, mountinfo) when it cannot tell.
 */
export function recordedMountsPresent(mounts: readonly MountRecord[]): boolean[] {
  if (mounts.length === 0) return [];
  let paths = '';
  for (const m of mounts) paths += `${refuseNul(m.path)}\0`;
  const r = native.recordedMountsPresent(
    paths,
    Float64Array.from(mounts, (m) => m.id),
  );
  if (r instanceof Error) throw r;
  return r;
}

/**
 * The ID (as mounts are recorded: MountRecord.id) of the mount a walk to `path` reaches (statx
 * STATX_MNT_ID[_UNIQUE] without following a last symlink); undefined when nothing is at `path`
 * (ENOENT, ENOTDIR). Throws other system errors.
 */
export function mountIdAt(path: string): number | undefined {
  const r = native.mountIdAt(path);
  if (r >= 0) return r;
  if (r === -ENOENT || r === -ENOTDIR) return undefined;
  throw systemError(-r, 'statx', path);
}

/** One crash point of the journal's recovery tests (native/core/fault.h); nothing when unset. */
export function crashPoint(): void {
  native.crashPoint();
}
