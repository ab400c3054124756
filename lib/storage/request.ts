// The Storage request (Kata's agent.proto `message Storage`) in either of its JSON forms, and its
// one shape after normalizeStorage: only types are checked here, values where it is placed.
import { StorageError, describeValue } from '../errors';

export type GroupChangePolicy = 'Always' | 'OnRootMismatch';

export interface FsGroup {
  groupId: number;
  /** Kata's FSGroupChangePolicy; 'Always' when absent. */
  groupChangePolicy?: GroupChangePolicy;
}

/**
 * A storage request (Kata's agent.proto `message Storage`) in our form, which is also its proto3
 * canonical JSON (lowerCamelCase field names).
 */
export interface Storage {
  /** The handler: one of `BUILTIN_DRIVERS` (lib/drivers.ts, Kata's names) or a registered one. */
  driver: string;
  /** Driver words, e.g. 'create_filesystem' for block storages. */
  driverOptions?: readonly string[];
  /** What to mount: a tag, PCI path, bus id, /dev node or filesystem name, as the driver reads it. */
  source: string;
  /** The filesystem type passed to the kernel ('ext4', 'tmpfs', 'virtiofs', ...). */
  fstype: string;
  /** mount(8)-style option words, split on commas (see parseMountOptions). */
  options?: readonly string[];
  /** Absolute, normalized path beneath one of the sandbox's allowed roots. */
  mountPoint: string;
  fsGroup?: FsGroup;
  /** Survives its last container; released by Sandbox.destroy(). */
  shared?: boolean;
  /**
   * Never read from a request: set by the Sandbox on the one `erofs.multi-layer` storage it makes
   * from the storages of a request that carry Kata's multi-layer markers (lib/handlers/multi-layer.ts).
   */
  layers?: Storage[];
}

/** Kata's agent.proto `message FSGroup` in protobuf JSON with the proto field names. */
export interface KataFsGroup {
  /** uint32 gid (proto3 JSON may carry it as a decimal string). */
  group_id: number | string;
  /** types.proto FSGroupChangePolicy: 0 / 'Always' (default), 1 / 'OnRootMismatch'. */
  group_change_policy?: 0 | 1 | GroupChangePolicy;
}

/**
 * Kata's agent.proto `message Storage` as the runtime's JSON carries it with the proto field
 * names (`driver_options`, `mount_point`, `fs_group`), as in a CreateContainerRequest's `storages`.
 */
export interface KataStorage {
  driver: string;
  driver_options?: readonly string[];
  source: string;
  fstype: string;
  options?: readonly string[];
  mount_point: string;
  fs_group?: KataFsGroup;
  /** Survives its last container (an extension of this package; Kata's message has no such field). */
  shared?: boolean;
}

// One field under either of its two names, never both: `{ mountPoint, mount_point }` does not
// compile, as normalizeStorage refuses it at run time (ERR_INVALID_STORAGE naming both keys).
type OneName<A extends string, B extends string, V> =
  ({ [K in A]: V } & { [K in B]?: never }) | ({ [K in B]: V } & { [K in A]?: never });
type OneOptionalName<A extends string, B extends string, V> =
  ({ [K in A]?: V } & { [K in B]?: never }) | ({ [K in B]?: V } & { [K in A]?: never });

/** An fsGroup in either naming (`groupId` / `group_id`, `groupChangePolicy` / `group_change_policy`), one name per field. */
export type FsGroupInput = OneOptionalName<'groupId', 'group_id', number | string> &
  OneOptionalName<'groupChangePolicy', 'group_change_policy', 0 | 1 | GroupChangePolicy>;

/**
 * What Sandbox.addStorages and normalizeStorage take: our form (`Storage`), Kata's protobuf JSON
 * (`KataStorage`), or a mix of the two namings across fields, but each field under one name only.
 */
export type StorageInput = {
  driver: string;
  source: string;
  fstype: string;
  options?: readonly string[];
  shared?: boolean;
} & OneName<'mountPoint', 'mount_point', string> &
  OneOptionalName<'driverOptions', 'driver_options', readonly string[]> &
  OneOptionalName<'fsGroup', 'fs_group', FsGroupInput>;

/** ERR_INVALID_STORAGE naming the storage's `field`, its value and why it is refused. */
export function invalid(field: string, value: unknown, why: string): StorageError {
  return new StorageError('ERR_INVALID_STORAGE', `storage ${field} ${why} (got ${describeValue(value)})`, {
    value,
    field,
  });
}

const present = (o: Record<string, unknown>, n: string): boolean =>
  Object.hasOwn(o, n) && o[n] !== undefined && o[n] !== null;

// Own properties only: a polluted Object.prototype must not add `shared` or `fsGroup` to a request.
// A field given under two of its names (`mountPoint` and `mount_point`) is refused rather than
// one of them silently dropped: which one the sender meant cannot be known.
function pick(o: Record<string, unknown>, ...names: string[]): unknown {
  return pickIn(undefined, o, ...names);
}

function pickIn(parent: string | undefined, o: Record<string, unknown>, ...names: string[]): unknown {
  const full = (n: string): string => (parent === undefined ? n : `${parent}.${n}`);
  let found: string | undefined;
  for (const n of names) {
    if (!present(o, n)) continue;
    if (found !== undefined) {
      throw new StorageError(
        'ERR_INVALID_STORAGE',
        `storage gives one field twice, as '${full(found)}' and '${full(n)}': send it under one name only`,
        { value: { [found]: o[found], [n]: o[n] }, field: full(n) },
      );
    }
    found = n;
  }
  return found === undefined ? undefined : o[found];
}

function stringField(o: Record<string, unknown>, field: string, ...names: string[]): string {
  const v = pick(o, ...names);
  if (v === undefined) return '';
  if (typeof v !== 'string') throw invalid(field, v, 'must be a string');
  return v;
}

function stringList(o: Record<string, unknown>, field: string, ...names: string[]): string[] | undefined {
  const v = pick(o, ...names);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw invalid(field, v, 'must be an array of strings');
  for (const e of v) if (typeof e !== 'string') throw invalid(field, v, 'must be an array of strings');
  return [...(v as string[])];
}

const policies: Record<string, GroupChangePolicy> = {
  '0': 'Always',
  '1': 'OnRootMismatch',
  Always: 'Always',
  OnRootMismatch: 'OnRootMismatch',
};

// Every key a Storage may carry, in each form (ours, agent.proto's field names, and the
// lowerCamel JSON names proto3 JSON also emits); anything else is a typo and refused.
const STORAGE_KEYS = new Set([
  'driver',
  'driverOptions',
  'driver_options',
  'source',
  'fstype',
  'options',
  'mountPoint',
  'mount_point',
  'fsGroup',
  'fs_group',
  'shared',
]);
const FS_GROUP_KEYS = new Set(['groupId', 'group_id', 'groupChangePolicy', 'group_change_policy']);

function unknownKeys(o: Record<string, unknown>, known: Set<string>, parent?: string): void {
  for (const k of Object.keys(o)) {
    if (known.has(k)) continue;
    const field = parent === undefined ? k : `${parent}.${k}`;
    throw new StorageError(
      'ERR_INVALID_STORAGE',
      `storage has an unknown key '${field}' (known: ${[...known].join(', ')})`,
      { value: k, field },
    );
  }
}

// proto3 JSON omits every field at its default: an absent group_id is 0, an absent policy Always.
function fsGroupField(o: Record<string, unknown>): FsGroup | undefined {
  const v = pick(o, 'fsGroup', 'fs_group');
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid('fsGroup', v, 'must be an object');
  const g = v as Record<string, unknown>;
  unknownKeys(g, FS_GROUP_KEYS, 'fsGroup');
  let id = pickIn('fsGroup', g, 'groupId', 'group_id') ?? 0;
  // proto3 JSON may carry integers as strings.
  if (typeof id === 'string' && /^\d+$/.test(id)) id = Number(id);
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 0xfffffffe) {
    throw invalid('fsGroup.groupId', id, 'must be an integer gid (0 to 4294967294)');
  }
  const p = pickIn('fsGroup', g, 'groupChangePolicy', 'group_change_policy');
  if (p === undefined) return { groupId: id };
  const policy = typeof p === 'string' || typeof p === 'number' ? policies[String(p)] : undefined;
  if (policy === undefined) {
    throw invalid('fsGroup.groupChangePolicy', p, "must be 'Always' (0) or 'OnRootMismatch' (1)");
  }
  return { groupId: id, groupChangePolicy: policy };
}

// Kata's runtimes send the shared filesystem's mount point as '/run/kata-containers/shared/containers/'
// (Go's defaultKataGuestSharedDir, runtime-rs's DEFAULT_KATA_GUEST_SHARE_DIR): one trailing '/'
// names the same directory, so it is dropped here and every later step (validation, the table
// key, the returned path) sees the one spelling without it. '//' at the end stays (and is refused).
// The Sandbox's path arguments (refcount, the reference calls) and allowed roots take it the same way.
export function withoutTrailingSlash(p: string): string {
  return p.length > 2 && p.endsWith('/') && p[p.length - 2] !== '/' ? p.slice(0, -1) : p;
}

/**
 * Shapes a Storage from our camelCase form or Kata's protobuf JSON (agent.proto `Storage`:
 * `driver_options`, `mount_point`, `fs_group.group_id`, `fs_group.group_change_policy` 0/1 or its
 * name, and the lowerCamel JSON names). As proto3 JSON omits defaults, an absent or null field is
 * its default ('' / [] / false, group 0, policy Always); a key no form knows is refused
 * (ERR_INVALID_STORAGE naming it), and so is one field under two names (`mountPoint` and
 * `mount_point`, `groupId` and `group_id`, ...: ERR_INVALID_STORAGE naming both). One trailing
 * '/' of the mount point is dropped (Kata's runtimes send the shared directory with one); other
 * unnormalized forms are left for validation to refuse. Only types are checked here;
 * `validateStorage` checks values.
 */
export function normalizeStorage(x: unknown): Storage {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw invalid('request', x, 'must be an object');
  const o = x as Record<string, unknown>;
  unknownKeys(o, STORAGE_KEYS);
  const s: Storage = {
    driver: stringField(o, 'driver', 'driver'),
    source: stringField(o, 'source', 'source'),
    fstype: stringField(o, 'fstype', 'fstype'),
    mountPoint: withoutTrailingSlash(stringField(o, 'mountPoint', 'mountPoint', 'mount_point')),
  };
  const driverOptions = stringList(o, 'driverOptions', 'driverOptions', 'driver_options');
  if (driverOptions !== undefined) s.driverOptions = driverOptions;
  const options = stringList(o, 'options', 'options');
  if (options !== undefined) s.options = options;
  const fsGroup = fsGroupField(o);
  if (fsGroup !== undefined) s.fsGroup = fsGroup;
  const shared = pick(o, 'shared');
  if (shared !== undefined) {
    if (typeof shared !== 'boolean') throw invalid('shared', shared, 'must be a boolean');
    s.shared = shared;
  }
  return s;
}
