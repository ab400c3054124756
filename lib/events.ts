// Operator-facing events on node:diagnostics_channel, and NODE_DEBUG=kata-storage.
//
// Two layers. Tracing channels (diagnostics_channel.tracingChannel, named as Node's own traced
// operations: tracing:kata-storage:<op>:start/end/asyncStart/asyncEnd/error) follow every
// operation from the moment it starts, direct mount()/umount() calls and device waits included,
// so a long wait is visible while it lasts. The plain `kata-storage:<op>` channels carry one
// message per sandbox operation once it is over, with its duration. Nothing is measured, built or
// logged when nobody listens.
import * as diagnostics_channel from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import type { Storage } from './storage';

/** `kata-storage:mount`: a mount a Sandbox made for a storage, once it is done. */
export interface MountEvent {
  driver: string;
  source: string;
  mountPoint: string;
  fstype: string;
  options: readonly string[];
  containerId?: string;
  /** The storage asks for fsGroup (or fsgid=) but its mount is read-only: ownership left as is. */
  fsGroupSkipped?: 'read-only';
  /** Wall time of the whole mount (mount(2) or the new API's calls), milliseconds. */
  durationMs: number;
  error?: Error;
}

/** `kata-storage:umount`: an unmount a Sandbox made when it gave a storage back. */
export interface UmountEvent {
  driver: string;
  mountPoint: string;
  /** Why the storage was released: 'release' (last reference), 'rollback' (failed request), 'destroy'. */
  reason: 'release' | 'rollback' | 'destroy';
  /**
   * 'umount': the unmount of `path` (published every time). 'remove': a best-effort removal of a
   * directory the sandbox created (published only when it failed: the release still succeeded,
   * `path` is kept and its removal retried by later releases and destroy()).
   */
  step: 'umount' | 'remove';
  /** What was unmounted or could not be removed. */
  path: string;
  /**
   * For step 'umount', which mount the step concerned (the release knows mounts by their mount
   * ID, statx STATX_MNT_ID_UNIQUE): 'recorded' the one the sandbox made, 'descendant' one found
   * mounted on or beneath it and unmounted first, 'gone' the recorded one was no longer mounted
   * (someone unmounted or detached it): released, nothing was unmounted.
   */
  mount?: 'recorded' | 'descendant' | 'gone';
  /** The container whose removal (or failed request) released it; absent for destroy() and sandbox-level storages. */
  containerId?: string;
  /** 0 for the unmounts of a request's native job undoing itself (timed with the job, not alone). */
  durationMs: number;
  error?: Error;
}

/** `kata-storage:wait`: a Sandbox's wait for a hot-plugged device. */
export interface WaitEvent {
  driver: string;
  /** What was waited for: a PCI path, CCW bus id, SCSI address or /dev node. */
  source: string;
  /** The device node found, e.g. '/dev/vda'. */
  device?: string;
  durationMs: number;
  error?: Error;
}

/** `kata-storage:mkfs`: mkfs.ext4 of a `create_filesystem` block storage. */
export interface MkfsEvent {
  device: string;
  fstype: string;
  durationMs: number;
  error?: Error;
}

/** What a watchable-bind poller did or met (Kata logs these; we publish them). */
export interface WatchEvent {
  mountPoint: string;
  source: string;
  /**
   * 'sync': changes applied (counts); 'fallback': the source outgrew Kata's limits and a plain bind
   * replaced the copy; 'source-missing': the source is gone (polling goes on); 'error': a poll
   * failed otherwise (polling goes on).
   */
  event: 'sync' | 'fallback' | 'source-missing' | 'error';
  added?: number;
  changed?: number;
  removed?: number;
  /** For 'fallback': which limit, and the value found. */
  limit?: 'entries' | 'bytes';
  value?: number;
  error?: Error;
}

/** What a Sandbox constructed with `statePath` found and did (Sandbox.recovery; published once on kata-storage:recovery). */
export interface RecoveryReport {
  /** Whether the Sandbox has a journal (`statePath`); a new, empty one counts. */
  journal: boolean;
  /** Mount points adopted: their mounts in place, with their references and containers. */
  adopted: string[];
  /** Mount points a call cut off by the crash may have been creating: what it made is undone. */
  rolledBack: string[];
  /**
   * Mount points the journal held whose mounts the kernel no longer has (all or some): gone from
   * the table, their remaining mounts unmounted and their directories removed.
   */
  dropped: string[];
  /**
   * Undoing that failed (an unmount EBUSY, a directory not empty): each such entry stays in the
   * table held by nobody and marked (StorageInfo.cleanupPending), each directory a leftover, both
   * retried by later releases and destroy().
   */
  errors: Error[];
  /** Bytes after the last whole record (a torn append), cut off. */
  tornBytes: number;
}

/** A diagnostics channel whose messages have a known shape. */
export interface StorageChannel<T> {
  readonly name: string | symbol;
  readonly hasSubscribers: boolean;
  subscribe(onMessage: (message: T, name: string | symbol) => void): void;
  unsubscribe(onMessage: (message: T, name: string | symbol) => void): boolean | void;
  publish(message: T): void;
}

const plain = <T>(name: string): StorageChannel<T> => diagnostics_channel.channel(name) as unknown as StorageChannel<T>;

/** The plain channels: one message per finished sandbox operation. */
export const channels = Object.freeze({
  mount: plain<MountEvent>('kata-storage:mount'),
  umount: plain<UmountEvent>('kata-storage:umount'),
  wait: plain<WaitEvent>('kata-storage:wait'),
  mkfs: plain<MkfsEvent>('kata-storage:mkfs'),
  watch: plain<WatchEvent>('kata-storage:watch'),
  recovery: plain<RecoveryReport>('kata-storage:recovery'),
});

// Contexts of the tracing channels. Node adds `result` (on success, asyncStart/asyncEnd) or
// `error` (error channel) to the same object before publishing the end of the operation.

/** mount()/mountSync() and every mount a Sandbox makes (kernel: mount(2) or fsopen/fsmount/move_mount). */
export interface MountTrace {
  source: string;
  target: string;
  fstype: string;
  options: readonly string[];
  mountApi?: 'auto' | 'new' | 'legacy';
  beneath?: string;
  error?: unknown;
}

/**
 * umount()/umountSync() (kernel: umount2(2)). A Sandbox's unmounts run in its native release job
 * and are published on kata-storage:umount from the job's record.
 */
export interface UmountTrace {
  target: string;
  detach: boolean;
  force: boolean;
  busyTimeoutMs: number;
  error?: unknown;
}

/**
 * remount(), and so each tmpfs Sandbox.updateEphemeralMounts changes (kernel: fspick +
 * fsconfig(FSCONFIG_CMD_RECONFIGURE), or mount(2) with MS_REMOUNT); `result` the API used.
 */
export interface RemountTrace {
  target: string;
  options: readonly string[];
  mountApi?: 'auto' | 'new' | 'legacy';
  result?: 'new' | 'legacy';
  error?: unknown;
}

/** A device lookup that had to wait (sysfs had no such device yet): uevents until it appears. */
export interface WaitTrace {
  bus: 'pci' | 'ccw' | 'scsi' | 'mmio' | 'pmem';
  /** The PCI path, CCW bus id, SCSI address or node name awaited. */
  source: string;
  timeoutMs: number;
  /** The device node, e.g. '/dev/vda'. */
  result?: string;
  error?: unknown;
}

/** mkfs.ext4 (spawned, with Kata's options). */
export interface MkfsTrace {
  device: string;
  fstype: string;
  error?: unknown;
}

/**
 * A Sandbox taking a reference on one storage of an addStorages request, whatever its driver
 * (`local` included): either it makes the storage (device wait, mkfs, mount, directories) or the
 * mount point is already held and it only counts another user (`result.taken.created` false).
 */
export interface StorageTrace {
  driver: string;
  mountPoint: string;
  containerId?: string;
  storage: Storage;
  /** `held`: the path held (normally the mount point); `taken.created`: false for a reference-only add. */
  result?: { held: string; taken: { path: string; created: boolean } };
  error?: unknown;
}

/** Sandbox.addStorages / removeContainer / destroy as a whole. */
export interface SandboxTrace {
  call: 'addStorages' | 'removeContainer' | 'destroy';
  containerId?: string;
  /** addStorages: how many storages the request holds. */
  storages?: number;
  result?: unknown;
  error?: unknown;
}

/** What a tracing channel's subscriber may handle (any subset, as Node's TracingChannel takes). */
export interface TracingSubscribers<C> {
  /** Published when the operation starts, before any system call. */
  start?(context: C): void;
  /** The synchronous part returned (for async operations the work is still under way). */
  end?(context: C): void;
  /** The operation settled: `result` or `error` is on the context. */
  asyncStart?(context: C): void;
  asyncEnd?(context: C): void;
  error?(context: C & { error: unknown }): void;
}

/** One traced operation: its five channels (tracing:kata-storage:<op>:start, ...). */
export interface StorageTracingChannel<C> {
  readonly start: StorageChannel<C>;
  readonly end: StorageChannel<C>;
  readonly asyncStart: StorageChannel<C>;
  readonly asyncEnd: StorageChannel<C>;
  readonly error: StorageChannel<C & { error: unknown }>;
  subscribe(subscribers: TracingSubscribers<C>): void;
  unsubscribe(subscribers: TracingSubscribers<C>): boolean | void;
}

const traced = <C extends object>(name: string): StorageTracingChannel<C> =>
  diagnostics_channel.tracingChannel(`kata-storage:${name}`) as unknown as StorageTracingChannel<C>;

/** Tracing channels: subscribe with `storageTracing.mount.subscribe({ start, asyncEnd, error })`. */
export const tracing = Object.freeze({
  mount: traced<MountTrace>('mount'),
  umount: traced<UmountTrace>('umount'),
  remount: traced<RemountTrace>('remount'),
  wait: traced<WaitTrace>('wait'),
  mkfs: traced<MkfsTrace>('mkfs'),
  storage: traced<StorageTrace>('storage'),
  addStorages: traced<SandboxTrace>('addStorages'),
  removeContainer: traced<SandboxTrace>('removeContainer'),
  destroy: traced<SandboxTrace>('destroy'),
});

const debug = debuglog('kata-storage');

function active(tc: diagnostics_channel.TracingChannel<object, object>): boolean {
  return (
    tc.start.hasSubscribers ||
    tc.end.hasSubscribers ||
    tc.asyncStart.hasSubscribers ||
    tc.asyncEnd.hasSubscribers ||
    tc.error.hasSubscribers
  );
}

/** True when any of these operations is traced or NODE_DEBUG=kata-storage logs them. */
export function tracingActive(...names: (keyof typeof tracing)[]): boolean {
  if (debug.enabled) return true;
  return names.some((n) => active(tracing[n] as unknown as diagnostics_channel.TracingChannel<object, object>));
}

function describe(context: object): string {
  return JSON.stringify(context, (k, v: unknown) =>
    k === 'storage' || k === 'result' || k === 'error' ? undefined : v,
  );
}

/**
 * Runs the async operation `fn` as `tracePromise` does (start, end, then asyncStart/asyncEnd or
 * error), and logs it under NODE_DEBUG=kata-storage. `context` is built only when someone listens.
 */
export function tracePromise<C extends object, T>(
  name: keyof typeof tracing,
  context: () => C,
  fn: () => Promise<T>,
): Promise<T> {
  const tc = tracing[name] as unknown as diagnostics_channel.TracingChannel<object, object>;
  const on = active(tc);
  if (!on && !debug.enabled) return fn();
  const ctx = context();
  if (!debug.enabled) return tc.tracePromise(fn, ctx) as Promise<T>;
  const start = now();
  debug('%s start %s', name, describe(ctx));
  const p = on ? (tc.tracePromise(fn, ctx) as Promise<T>) : fn();
  return p.then(
    (v) => {
      debug('%s done in %s ms %s', name, (now() - start).toFixed(2), describe(ctx));
      return v;
    },
    (err: unknown) => {
      debug('%s failed in %s ms: %s', name, (now() - start).toFixed(2), (err as Error)?.message ?? String(err));
      throw err;
    },
  );
}

/**
 * Publishes on tracing channel `name` an operation that already ran, from its record: start and
 * end, then `outcome.error` (error, asyncStart, asyncEnd) or `outcome.result` (asyncStart,
 * asyncEnd) on the same context, as tracePromise would have while it ran; logged the same way.
 * For steps a native job carried out, so subscribers see each as its own operation and the job
 * runs the same whether or not anyone listens.
 */
export function traceRecorded<C extends object>(
  name: keyof typeof tracing,
  context: C,
  durationMs: number,
  outcome: { result?: unknown; error?: unknown },
): void {
  const tc = tracing[name] as unknown as diagnostics_channel.TracingChannel<object, object>;
  const ctx = context as C & { result?: unknown; error?: unknown };
  if (debug.enabled) debug('%s start %s', name, describe(ctx));
  tc.start.publish(ctx);
  tc.end.publish(ctx);
  if ('error' in outcome) {
    ctx.error = outcome.error;
    tc.error.publish(ctx);
    if (debug.enabled) {
      const why = (outcome.error as Error)?.message ?? String(outcome.error);
      debug('%s failed in %s ms: %s', name, durationMs.toFixed(2), why);
    }
  } else {
    ctx.result = outcome.result;
    if (debug.enabled) debug('%s done in %s ms %s', name, durationMs.toFixed(2), describe(ctx));
  }
  tc.asyncStart.publish(ctx);
  tc.asyncEnd.publish(ctx);
}

/** traceSync for the synchronous calls (start, end, error), logged the same way. */
export function traceSync<C extends object, T>(name: keyof typeof tracing, context: () => C, fn: () => T): T {
  const tc = tracing[name] as unknown as diagnostics_channel.TracingChannel<object, object>;
  const on = active(tc);
  if (!on && !debug.enabled) return fn();
  const ctx = context();
  const start = now();
  debug('%s start %s', name, describe(ctx));
  try {
    const v = on ? (tc.traceSync(fn, ctx) as T) : fn();
    debug('%s done in %s ms', name, (now() - start).toFixed(2));
    return v;
  } catch (err) {
    debug('%s failed in %s ms: %s', name, (now() - start).toFixed(2), (err as Error)?.message ?? String(err));
    throw err;
  }
}

export function now(): number {
  return performance.now();
}

/** Runs `fn`, publishing `build(durationMs, error)` on `channel` when someone listens (nothing when it returns undefined). */
export async function timed<T, M>(
  channel: StorageChannel<M>,
  fn: () => Promise<T>,
  build: (durationMs: number, error: Error | undefined, value: T | undefined) => M | undefined,
): Promise<T> {
  if (!channel.hasSubscribers) return fn();
  const start = now();
  try {
    const value = await fn();
    const m = build(now() - start, undefined, value);
    if (m !== undefined) channel.publish(m);
    return value;
  } catch (err) {
    const m = build(now() - start, err as Error, undefined);
    if (m !== undefined) channel.publish(m);
    throw err;
  }
}
