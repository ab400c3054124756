// The request runner's per-storage path: a storage whose driver has no steps is made by its
// handler's create(), under its mount point's lock, with a context that records in the entry
// everything it mounts and creates, so the release can undo exactly that.
import { StorageError, abortError, explainMountError } from '../errors';
import { channels, timed } from '../events';
import { abortedMountsSettled, checkPath, mountApiOf, mountRecorded } from '../mount';
import { applyStorageJobs, native } from '../native';
import { ownershipSkipped } from '../handlers/common';
import type { DeviceContext, StorageContext, StorageHandler } from '../registry';
import { allowedRootOf, beneathRefusal, placeMountPoint, type Placement, type PreparedStorage } from '../storage';
import { StorageDevice } from '../storage-device';
import { storageJob } from './job';
import { cleanup } from './release';
import { traceStorages } from './job-events';
import { destroyedError, errorsOf, type PlannedStorage, type StorageTable, type Taken } from './table';

/** A storage's devices, being found since its request started, and how to stop looking. */
export interface EarlyDevices {
  readonly devices: Promise<string[]>;
  /**
   * Aborts the waits still running (their result is never used); resolves once devices() has
   * settled, so each wait's `kata-storage:wait` event is out before the request settles.
   */
  cancel(): Promise<void>;
}

/** True when the next add of `path` only gains a reference (acquire's rule). */
function heldNow(table: StorageTable, path: string): boolean {
  const e = table.entries.get(path);
  return e !== undefined && !(e.refcount === 0 && e.cleanupPending);
}

/**
 * Starts devices() for every storage of a request whose handler has it and whose mount point is
 * not held, all at once, each under its own AbortController joined to the caller's `signal`: a
 * request's latency is then its longest wait rather than the sum. Each promise has a handler
 * attached now, so a wait whose storage is never reached (the request failed first) cannot
 * become an unhandled rejection; the storage's create() still sees its rejection.
 */
export function startDevices(
  table: StorageTable,
  plan: readonly { storage: PreparedStorage; handler: StorageHandler }[],
  containerId: string | undefined,
  signal: AbortSignal | undefined,
): (EarlyDevices | undefined)[] {
  return plan.map(({ storage, handler }) =>
    heldNow(table, storage.mountPoint) ? undefined : startDevicesOf(table, storage, handler, containerId, signal),
  );
}

/**
 * The first device node of each storage of a one-job request (index in `plan`; undefined for a
 * storage whose handler has no devices(), whose mount point is held, or listed before in the
 * request), all looked for at once:
 * every storage, or only those `at`. The first wait that fails aborts the others and, once they
 * settled, is thrown; nothing was made, so that storage alone is traced as failed.
 */
export async function findDevices(
  table: StorageTable,
  plan: readonly PlannedStorage[],
  containerId: string | undefined,
  signal: AbortSignal | undefined,
  at?: readonly number[],
): Promise<(string | undefined)[]> {
  // A mount point listed again in the request only gains a reference (the job's own rule).
  const seen = new Set<string>();
  const early = plan.map(({ storage, handler }, i) => {
    const first = !seen.has(storage.mountPoint);
    seen.add(storage.mountPoint);
    return !first || (at !== undefined && !at.includes(i)) || heldNow(table, storage.mountPoint)
      ? undefined
      : startDevicesOf(table, storage, handler, containerId, signal);
  });
  let failedAt = -1;
  try {
    const found = await Promise.all(
      early.map((e, i) =>
        e?.devices.catch((err: unknown) => {
          if (failedAt < 0) failedAt = i;
          throw err;
        }),
      ),
    );
    return found.map((d) => d?.[0]);
  } catch (err) {
    await Promise.all(early.map((e) => e?.cancel()));
    traceStorages(plan, [], undefined, containerId, [], err, failedAt < 0 ? 0 : failedAt);
    throw err;
  }
}

/** devices() of one storage, started now under its own AbortController (undefined: the handler has none). */
function startDevicesOf(
  table: StorageTable,
  storage: PreparedStorage,
  handler: StorageHandler,
  containerId: string | undefined,
  signal: AbortSignal | undefined,
): EarlyDevices | undefined {
  if (handler.devices === undefined) return undefined;
  const own = new AbortController();
  const joined = signal === undefined ? own.signal : AbortSignal.any([signal, own.signal]);
  let devices: Promise<string[]>;
  try {
    devices = handler.devices(storage, deviceContext(table, storage, containerId, joined));
  } catch (err) {
    devices = Promise.reject(err as Error);
  }
  const settled = devices.then(
    () => {},
    () => {},
  );
  return {
    devices,
    cancel: () => {
      own.abort();
      return settled;
    },
  };
}

/**
 * One storage of a request, under its mount point's lock: a held mount point only gains a
 * reference (one whose cleanup is owed is finished first), and `early` devices are cancelled
 * unused; otherwise the handler's create() makes it through a recording context (given `early`
 * devices, or devices() started now), and a failure undoes exactly what it recorded. `held` is
 * what create() returned (the mount point when it returned nothing).
 */
export function acquire(
  table: StorageTable,
  storage: PreparedStorage,
  placement: Placement,
  handler: StorageHandler,
  containerId: string | undefined,
  signal: AbortSignal | undefined,
  early?: EarlyDevices,
): Promise<{ taken: Taken; held: string }> {
  const path = storage.mountPoint;
  return table.locks.withLock(path, async () => {
    if (table.destroyed) throw destroyedError();
    const existing = table.entries.get(path);
    if (existing && existing.refcount === 0 && existing.cleanupPending) {
      // Half torn down: finish the job first; if that still fails, this request fails too.
      await cleanup(table, existing, 'release');
    } else if (existing) {
      // Held meanwhile (an earlier storage of the request, another request, setSandboxStorage):
      // nothing is mounted, so the device is not needed.
      await early?.cancel();
      existing.refcount++;
      return { taken: { path, created: false }, held: path };
    }
    const e = new StorageDevice(path, storage.driver, storage.shared === true);
    e.storage = storage;
    e.handler = handler;
    // Not held when the request started, or held then and released since: its wait starts now.
    const devices = early ?? startDevicesOf(table, storage, handler, containerId, signal);
    const ctx = context(table, e, storage, placement, containerId, signal, devices?.devices);
    let held: string;
    try {
      try {
        held = await handler.create(storage, ctx);
      } finally {
        // Used by now, or create() failed without using it: a wait still running is not needed.
        await devices?.cancel();
      }
      // destroy() ran meanwhile: it did not see this entry, so it must not outlive the call.
      if (table.destroyed) throw destroyedError();
    } catch (err) {
      if (signal?.aborted) await abortedMountsSettled();
      try {
        await cleanup(table, e, 'rollback', containerId);
      } catch (undoErr) {
        // Still mounted: keep it in the table, held by nobody and marked, so the next add of
        // this mount point, a release or destroy() finishes the job. Never claim it is held.
        table.keepUndone(e);
        errorsOf(err, 'rollbackErrors', [undoErr as Error]);
      }
      throw err;
    }
    const raced = table.entries.get(path);
    // setSandboxStorage() (synchronous) took a reference while we were creating.
    if (raced) raced.takeOver(e);
    else table.entries.set(path, e);
    return { taken: { path, created: true }, held: typeof held === 'string' && held !== '' ? held : path };
  });
}

/** The DeviceContext a handler's devices() gets; each wait is published on `kata-storage:wait`. */
function deviceContext(
  table: StorageTable,
  storage: PreparedStorage,
  containerId: string | undefined,
  signal: AbortSignal | undefined,
): DeviceContext {
  return {
    driver: storage.driver,
    containerId,
    signal,
    sysfsRoot: table.settings.sysfsRoot,
    devRoot: table.settings.devRoot,
    allowedRoots: table.settings.allowedRoots,
    hotplugTimeoutMs: table.settings.hotplugTimeoutMs,
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

/** The StorageContext a handler's create() gets: each mount and directory it makes is recorded in `e`. */
function context(
  table: StorageTable,
  e: StorageDevice,
  storage: PreparedStorage,
  placement: Placement,
  containerId: string | undefined,
  signal: AbortSignal | undefined,
  early: Promise<string[]> | undefined,
): StorageContext {
  const { allowedRoots, mountApi } = table.settings;

  const make = async (target: string, p: Placement, file: boolean): Promise<string[]> => {
    // Directories an earlier storage left behind on the way become this entry's (shallowest
    // first, before what is created now), so its release removes them and nobody else does.
    const claimed = table.claimLeftovers(target);
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
    const fsGroupSkipped = ownership && onPoint && error === undefined && readOnly ? ('read-only' as const) : undefined;
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
    ...deviceContext(table, storage, containerId, signal),
    ...(early === undefined ? {} : { devices: early }),
    watchIntervalMs: table.settings.watchIntervalMs,
    mountApi: table.settings.mountApi,
    placement,
    async makeMountPoint(opts = {}) {
      if ((await make(storage.mountPoint, placement, opts.file === true)).includes(storage.mountPoint))
        e.createdMountPoint = true;
    },
    async makeDirectory(path: string) {
      table.pre(path);
      if ((await make(path, placeMountPoint(path, allowedRoots), false)).includes(path)) e.trees.add(path);
    },
    async mount(source, target, fstype, options = []) {
      // The storage's own mount point was placed once at validation; another target (a custom
      // driver's) is placed by the same rule.
      const root = target === storage.mountPoint ? placement.root : rootOf(table, target);
      if (target !== storage.mountPoint) table.pre(target);
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
        {
          ...mount,
          ...(opts.fsgid === undefined ? {} : { fsgid: opts.fsgid }),
          file: opts.file === true,
          premount: opts.premount === true,
          ...(opts.directory === undefined ? {} : { directory: opts.directory }),
        },
        mountApiOf(mountApi),
      );
      if (signal?.aborted) throw abortError(signal);
      let skipped = false;
      let accepted = false;
      await timed(
        channels.mount,
        async () => {
          // As make(): leftovers on the way become this entry's before the job creates the rest.
          const claimed = table.claimLeftovers(target);
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
          // Nothing mounted and no failure: a pre-mount was accepted, with no mount to report.
          accepted = failed < 0 && outcome?.mounted.length === 0;
          if (failed >= 0) {
            // Named the way mount() names it (an unknown fstype, no CAP_SYS_ADMIN).
            const err = explainMountError(error!, fstype);
            errorsOf(err, 'rollbackErrors', undoErrors);
            throw err;
          }
          if (signal?.aborted) throw abortError(signal);
        },
        (durationMs, error) =>
          accepted && error === undefined
            ? undefined
            : mountEvent(source, target, fstype, options, durationMs, error, skipped),
      );
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
function rootOf(table: StorageTable, target: string): string {
  const root = allowedRootOf(target, table.settings.allowedRoots);
  if (root === undefined) {
    throw new StorageError(
      'ERR_INVALID_STORAGE',
      `mount target ${target} is not strictly beneath an allowed root (${table.settings.allowedRoots.join(', ')})`,
      {
        value: target,
      },
    );
  }
  return root;
}
