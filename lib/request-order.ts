// The order a request's storages are applied in, and the mounts a request may not cover. A mount
// made over a directory hides what is mounted beneath it: a child storage applied before its
// parent ends up under the parent's mount (its path then names the parent's empty directory, or
// nothing), and a parent mounted over a storage another container holds hides that one. Kata's
// agent applies a request in the caller's order and has both faults; here a request is applied
// parents first and a mount that would hide a held storage is refused.
import { StorageError } from './errors';

/** What the sandbox table holds at a path: the storage's mount point and the mounts it made. */
export interface HeldStorage {
  readonly mounts: readonly { readonly path: string }[];
}

interface Planned {
  readonly storage: { readonly mountPoint: string };
}

// The permutation parentsFirst applied, kept with the array it returned: inCallerOrder reads it.
const callerIndex = new WeakMap<readonly unknown[], readonly number[]>();

/** True when `path` lies strictly below `dir` (both absolute and normalized). */
const beneath = (path: string, dir: string): boolean =>
  path.length > dir.length && path.startsWith(dir) && (dir === '/' || path.charCodeAt(dir.length) === 47);

/**
 * The request's storages in the order they are applied: each after the storages of the request
 * whose mount points lie above its own, those shallowest first; otherwise the caller's order. So a
 * parent is mounted before any storage beneath it and released after them (releases go newest
 * first), and a request with nothing nested is applied exactly as listed. This is a stable sort
 * by depth restricted to the pairs where depth decides what hides what: sorting unrelated storages
 * by depth too would change their order (which storage fails first, the order events are
 * published in) for no mount's sake.
 *
 * Refuses the request, before anything is touched, when one of its mount points that is not held
 * yet (a new mount) lies above a path the sandbox holds, a held storage's mount point or a mount
 * it made (`held`: the sandbox's table; `busy`: mount points being applied or released now):
 * `StorageError` `ERR_MOUNT_POINT_COVERS_STORAGE`, `value` the mount point, `covered` the held
 * path. A request's own child under its own new parent is not covering: it is applied after.
 *
 * The array returned remembers the caller's order for inCallerOrder(). A request with no storage
 * listed before one above it comes back as the same array.
 */
export function parentsFirst<T extends Planned>(
  plan: T[],
  held: ReadonlyMap<string, HeldStorage>,
  busy: Iterable<string> = [],
): T[] {
  const busyPaths = [...busy];
  for (const { storage } of plan) {
    const point = storage.mountPoint;
    if (held.has(point)) continue; // only gains a reference: nothing is mounted
    let covered = busyPaths.find((path) => beneath(path, point));
    for (const [path, e] of held) {
      if (covered !== undefined) break;
      covered = beneath(path, point) ? path : e.mounts.find((m) => beneath(m.path, point))?.path;
    }
    if (covered === undefined) continue;
    throw new StorageError(
      'ERR_MOUNT_POINT_COVERS_STORAGE',
      `a mount at ${point} would hide ${covered}, which the sandbox holds; release that storage first, or mount elsewhere`,
      { value: point, covered },
    );
  }
  if (plan.length < 2) return plan;
  const points = plan.map((p) => p.storage.mountPoint);
  // above[i]: the request's storages above storage i, in the caller's order; undefined if none.
  const above: (number[] | undefined)[] = points.map((point) => {
    let found: number[] | undefined;
    for (let j = 0; j < points.length; j++) if (beneath(point, points[j]!)) (found ??= []).push(j);
    return found;
  });
  if (above.every((js, i) => js === undefined || js.every((j) => j < i))) return plan;
  const order: number[] = [];
  const placed = new Array<boolean>(plan.length).fill(false);
  for (let i = 0; i < plan.length; i++) {
    if (placed[i]) continue;
    // Its ancestors not placed yet go first, shallowest first: a shorter path above the same
    // mount point is the shallower one.
    const first = (above[i] ?? []).filter((j) => !placed[j]).sort((a, b) => points[a]!.length - points[b]!.length);
    for (const j of [...first, i]) {
      placed[j] = true;
      order.push(j);
    }
  }
  const sorted = order.map((i) => plan[i]!);
  callerIndex.set(sorted, order);
  return sorted;
}

/**
 * `results[k]` answers `sorted[k]` (what parentsFirst returned); the same results in the order
 * the caller listed its storages, so `addStorages` resolves `held[i]` for the caller's i-th one.
 */
export function inCallerOrder<R>(sorted: readonly unknown[], results: readonly R[]): R[] {
  const order = callerIndex.get(sorted);
  if (order === undefined) return results as R[];
  const out = new Array<R>(results.length);
  for (let k = 0; k < results.length; k++) out[order[k]!] = results[k]!;
  return out;
}
