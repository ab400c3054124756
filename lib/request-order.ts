// The order a request's storages are applied in, and the mounts a request may not cover. A mount
// made over a directory hides what is mounted beneath it: a child storage applied before its
// parent ends up under the parent's mount (its path then names the parent's empty directory, or
// nothing), and a parent mounted over a storage another container holds hides that one. Kata's
// agent applies a request in the caller's order and has both faults; here a request is applied
// parents first and a mount that would hide a held storage is refused.
import { StorageError } from './errors';

/** What the sandbox table holds at a path: the storage's mount point and the mounts it made. */
export interface HeldStorage {
  readonly mounts: readonly string[];
}

interface Planned {
  readonly storage: { readonly mountPoint: string };
}

// The permutation parentsFirst applied, kept with the array it returned: inCallerOrder reads it.
const callerIndex = new WeakMap<readonly unknown[], readonly number[]>();

// Mount points are absolute and normalized (normalizeStorage): the depth is the count of '/'.
const depth = (path: string): number => {
  let n = 0;
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === 47) n++;
  return n;
};

/** True when `path` lies strictly below `dir` (both absolute and normalized). */
const beneath = (path: string, dir: string): boolean =>
  path.length > dir.length && path.startsWith(dir) && (dir === '/' || path.charCodeAt(dir.length) === 47);

/**
 * The request's storages in the order they are applied: by mount point depth, shallowest first
 * (a stable sort, so storages at one depth keep the caller's order), so a parent is mounted
 * before any storage beneath it and released after them (releases go newest first).
 *
 * Refuses the request, before anything is touched, when one of its mount points that is not held
 * yet (a new mount) lies above a path the sandbox holds, a held storage's mount point or a mount
 * it made (`held`: the sandbox's table; `busy`: mount points being applied or released now):
 * `StorageError` `ERR_MOUNT_POINT_COVERS_STORAGE`, `value` the mount point, `covered` the held
 * path. A request's own child under its own new parent is not covering: it is applied after.
 *
 * The array returned remembers the caller's order for inCallerOrder(). Requests of one storage,
 * or already in order, come back as the same array.
 */
export function parentsFirst<T extends Planned>(
  plan: T[],
  held: ReadonlyMap<string, HeldStorage>,
  busy: Iterable<string> = [],
): T[] {
  const heldPaths = new Set<string>(busy);
  for (const [path, e] of held) {
    heldPaths.add(path);
    for (const m of e.mounts) heldPaths.add(m);
  }
  for (const { storage } of plan) {
    const point = storage.mountPoint;
    if (held.has(point)) continue; // only gains a reference: nothing is mounted
    for (const path of heldPaths) {
      if (!beneath(path, point)) continue;
      throw new StorageError(
        'ERR_MOUNT_POINT_COVERS_STORAGE',
        `a mount at ${point} would hide ${path}, which the sandbox holds; release that storage first, or mount elsewhere`,
        { value: point, covered: path },
      );
    }
  }
  if (plan.length < 2) return plan;
  const depths = plan.map((p) => depth(p.storage.mountPoint));
  if (depths.every((d, i) => i === 0 || depths[i - 1]! <= d)) return plan;
  const order = plan.map((_, i) => i).sort((a, b) => depths[a]! - depths[b]!);
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
