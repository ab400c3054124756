// The request runner: a request is validated and parsed whole, ordered parents first, then made as
// one native job (every storage has steps) once its devices are found, or storage by storage
// through the handlers' create(), every reference it took given back in reverse order if one
// fails. The devices a request needs are all looked for from its start, so it waits as long as
// its slowest device.
// RemoveContainer gives back exactly what a container's requests took.
import { StorageError, abortError, invalidArgType } from '../errors';
import { tracePromise } from '../events';
import { groupMultiLayer } from '../handlers/multi-layer';
import { inCallerOrder, parentsFirst } from '../request-order';
import { checkPlacement, normalizeStorage, validateStorage, type PreparedStorage } from '../storage';
import { acquire, findDevices, startDevices } from './create';
import { DevicesNotSought, addAsOneJob, stepsOf } from './job';
import { release, releaseAsOneJob, releaseJobs, retryPending } from './release';
import { destroyedError, errorsOf, type StorageTable, type Taken } from './table';

export interface AddStoragesOptions {
  containerId?: string;
  signal?: AbortSignal;
}

/**
 * Sandbox.addStorages once traced: validates and orders the whole request, then runs it as one
 * native job or storage by storage, taking one reference per storage for `opts.containerId`.
 */
export async function add(
  table: StorageTable,
  storages: readonly unknown[],
  opts: AddStoragesOptions,
): Promise<string[]> {
  if (!Array.isArray(storages)) throw invalidArgType('storages', 'an array', storages);
  const containerId = Object.hasOwn(opts, 'containerId') ? opts.containerId : undefined;
  const signal = Object.hasOwn(opts, 'signal') ? opts.signal : undefined;
  if (containerId !== undefined && typeof containerId !== 'string')
    throw invalidArgType('options.containerId', 'of type string', containerId);
  if (table.destroyed) throw destroyedError();
  // The whole request is validated and parsed once, here; what flows down is the prepared form.
  // Kata's multi-layer EROFS storages become one request for the overlay they assemble.
  const planned = groupMultiLayer(storages.map((x) => normalizeStorage(x))).map((normalized) => {
    const handler = table.settings.registry.get(normalized.driver);
    // The walk from the root is checked below, with the rest of the request's mount points.
    const { placement, mountOptions } = validateStorage(normalized, table.settings.allowedRoots, false);
    if (handler === undefined) {
      throw new StorageError(
        'ERR_UNKNOWN_STORAGE_DRIVER',
        `no handler is registered for storage driver '${normalized.driver}' (registered: ${table.settings.registry.drivers().join(', ') || 'none'})`,
        { value: normalized.driver, registered: table.settings.registry.drivers() },
      );
    }
    // The normalized storage is a fresh object of ours: it becomes the prepared one in place
    // (a copy through object spread cost more than the rest of its validation), and driverData
    // joins it once the handler's validate() returned.
    const storage = normalized as { -readonly [K in keyof PreparedStorage]: PreparedStorage[K] };
    storage.mountOptions = mountOptions;
    storage.placement = placement;
    const driverData = handler.validate?.(
      storage,
      containerId === undefined
        ? { allowedRoots: table.settings.allowedRoots }
        : { allowedRoots: table.settings.allowedRoots, containerId },
    );
    if (driverData !== undefined) storage.driverData = driverData;
    return { storage, placement, handler };
  });
  // Parents before what lies beneath them; no new mount over a held storage (lib/request-order.ts).
  const plan = parentsFirst(planned, table.entries, table.locks.held());
  if (signal?.aborted) throw abortError(signal);
  const mountPoints = plan.map((p) => p.storage.mountPoint);
  table.begin('add', mountPoints, mountPoints, containerId);

  // A request whose every storage has steps is one native job, whoever listens, once the devices
  // it needs are all found (looked for at once).
  const steps = stepsOf(plan);
  if (steps !== undefined) {
    const found = steps.some((s) => s.device !== undefined) ? await findDevices(table, plan, containerId, signal) : [];
    let taken: Taken[] | undefined;
    while (taken === undefined) {
      if (table.destroyed) throw destroyedError();
      if (signal?.aborted) throw abortError(signal);
      try {
        const t = addAsOneJob(table, plan, steps, found, containerId, signal);
        taken = t instanceof Promise ? await t : t;
      } catch (err) {
        if (!(err instanceof DevicesNotSought)) throw err;
        const late = await findDevices(table, plan, containerId, signal, err.at);
        for (const i of err.at) found[i] = late[i];
      }
    }
    table.holdFor(containerId, taken);
    return inCallerOrder(
      plan,
      taken.map((t) => t.path),
    );
  }
  for (const { storage, placement } of plan) checkPlacement(storage.mountPoint, placement);
  // Every device the request needs is looked for from now, all at once; the storages are still
  // made one by one in order, each using its own wait's result.
  const early = startDevices(table, plan, containerId, signal);
  const taken: Taken[] = [];
  const held: string[] = [];
  try {
    for (let i = 0; i < plan.length; i++) {
      if (signal?.aborted) throw abortError(signal);
      const item = plan[i]!;
      const { storage } = item;
      const r = await tracePromise(
        'storage',
        () => ({ driver: storage.driver, mountPoint: storage.mountPoint, containerId, storage }),
        () => acquire(table, storage, item.placement, item.handler, containerId, signal, early[i]),
      );
      taken.push(r.taken);
      held.push(r.held);
    }
  } catch (err) {
    // The storages not reached will not be made: their waits stop now, before the rollback.
    await Promise.all(early.map((e) => e?.cancel()));
    const rollbackErrors: Error[] = [];
    for (let i = taken.length - 1; i >= 0; i--) {
      try {
        await release(table, taken[i]!.path, 'rollback', taken[i]!.created, containerId);
      } catch (e) {
        rollbackErrors.push(e as Error);
      }
    }
    errorsOf(err, 'rollbackErrors', rollbackErrors);
    throw err;
  }
  table.holdFor(containerId, taken);
  return inCallerOrder(plan, held);
}

/** Sandbox.removeContainer once traced: gives back that container's references, then owed cleanups. */
export async function remove(table: StorageTable, containerId: string): Promise<void> {
  if (typeof containerId !== 'string') throw invalidArgType('containerId', 'of type string', containerId);
  const refs = table.containers.get(containerId);
  table.begin(
    'release',
    [],
    (refs ?? []).map((t) => t.path),
    containerId,
  );
  table.containers.delete(containerId);
  const pendingBefore = table.pendingPaths();
  const errors: Error[] = [];
  const releases = refs === undefined ? undefined : releaseJobs(table, refs);
  if (releases !== undefined) {
    for (const t of refs!) pendingBefore.delete(t.path);
    await releaseAsOneJob(table, releases, errors, containerId);
  } else {
    for (let i = (refs?.length ?? 0) - 1; i >= 0; i--) {
      pendingBefore.delete(refs![i]!.path);
      try {
        await release(table, refs![i]!.path, 'release', false, containerId);
      } catch (e) {
        if ((e as { code?: string }).code !== 'ERR_STORAGE_NOT_FOUND') errors.push(e as Error);
      }
    }
  }
  await retryPending(table, pendingBefore);
  if (errors.length > 0) {
    errorsOf(errors[0], 'cleanupErrors', errors.slice(1));
    throw errors[0];
  }
}
