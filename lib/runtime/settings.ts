// The sandbox settings the planner works from: the camelCase of Kata's configuration.toml keys
// (`shared_fs` -> sharedFs, `virtio_fs_cache_size` -> virtioFsCacheSize, ...), the guest paths
// Kata's runtime hard-codes (here overridable, so tests can place them under a scratch root), and
// what the runtime knows about the host: the block devices it attached and what it found at each
// volume's source (stat + mountinfo), which is what Kata's runtime reads from the host itself.
import { posix } from 'node:path';
import type { FsGroup } from '../storage';
import { at, planError } from './errors';
import { cleanPath } from './paths';

/** Kata's `shared_fs`. `virtio-9p` mounts 9p; `none` shares nothing (files are copied). */
export type SharedFs = 'virtio-fs' | 'virtio-9p' | 'none';
/** Kata's `virtio_fs_cache` (virtiofsd `--cache`). */
export type VirtioFsCache = 'never' | 'metadata' | 'auto' | 'always';
/** Kata's `block_device_driver`. */
export type BlockDeviceDriver = 'virtio-blk' | 'virtio-scsi' | 'virtio-mmio' | 'virtio-blk-ccw' | 'nvdimm';

/**
 * Where the runtime attached a host block device in the guest (Kata's `config.BlockDrive`), plus
 * what a direct-assigned volume's mountInfo.json says about it. Which address is used depends
 * on `blockDeviceDriver`; `pmem` (an nvdimm, `/dev/pmemN`) wins over it, as in Kata.
 */
export interface AttachedBlockDevice {
  /** virtio-blk: the guest PCI path, e.g. `02/03`. */
  pciPath?: string;
  /** virtio-scsi: `target:lun`, e.g. `0:1`. */
  scsiAddr?: string;
  /** virtio-blk-ccw: the CCW device number, e.g. `0.0.0005`. */
  devNo?: string;
  /** virtio-mmio: the guest node, e.g. `/dev/vdb`. */
  virtPath?: string;
  /** An nvdimm (pmem) device node in the guest, e.g. `/dev/pmem0`. */
  pmem?: string;
  /** The filesystem on the device. Without it the volume is bound as a device node (`bind`). */
  fstype?: string;
  /** Mount options for the device's filesystem (mountInfo.json `options`). */
  options?: string[];
  /** Create the filesystem in the guest first (mountInfo.json metadata `createFs`). */
  createFilesystem?: boolean;
  /** mountInfo.json metadata `encryptionKey` (passed to the agent as `encryption_key=`). */
  encryptionKey?: string;
  fsGroup?: FsGroup;
  /** Kata's Mount.Shared: the storage outlives the container (block emptyDir). */
  shared?: boolean;
}

/** What the runtime found at a volume's source on the host. */
export interface HostVolume {
  /** The filesystem mounted there (mountinfo), e.g. `tmpfs` for an emptyDir with medium Memory. */
  fstype?: string;
  /** That filesystem's options, e.g. `['size=64m']` or `['pagesize=2M']`. */
  options?: string[];
  /** stat st_gid: a non-root group is passed to the guest as `fsgid=`. */
  gid?: number;
  /** stat file type. `block` makes the mount a block volume (which then needs an attached device). */
  kind?: 'directory' | 'file' | 'block' | 'char' | 'socket' | 'fifo';
  /**
   * For a Kubernetes `subPath` mount: the host path of the volume this source is a view of, e.g.
   * `/var/lib/kubelet/pods/<uid>/volumes/kubernetes.io~empty-dir/cache`. kubelet binds
   * `<that path>/<subPath>` at `<pod dir>/volume-subpaths/<volume>/<container>/<n>` and gives the
   * container that bind; the host's mountinfo shows it (the bind's root is the volume's
   * directory plus the subPath). With `subPath`, a memory or disk emptyDir the guest makes is
   * planned as the directory `subPath` inside that emptyDir's guest storage, so this container
   * sees what the others that mount the emptyDir whole see. Given together with `subPath`.
   */
  subPathOf?: string;
  /** The path inside `subPathOf` (the volumeMount's subPath): relative and normalized, e.g. `app`. */
  subPath?: string;
}

export interface RuntimeSettings {
  /** The sandbox (pod) id; defaults to the container id (Kata: the first container is the sandbox). */
  sandboxId?: string;
  /** `shared_fs`, default `virtio-fs`. */
  sharedFs?: SharedFs;
  /** `virtio_fs_cache`, default `auto`. */
  virtioFsCache?: VirtioFsCache;
  /** `virtio_fs_cache_size` in MiB (the DAX window), default 0 (no DAX). */
  virtioFsCacheSize?: number;
  /** `msize_9p` in bytes, default 8192. */
  msize9p?: number;
  /** `block_device_driver`, default `virtio-scsi` (Kata's default). */
  blockDeviceDriver?: BlockDeviceDriver;
  /** The sandbox's /dev/shm size in bytes (Kata: from the sandbox container's shm mount); 0 = none. */
  shmSize?: number;
  /** `disable_guest_empty_dir`: share disk emptyDirs from the host instead of making them in the guest. */
  disableGuestEmptyDir?: boolean;
  /**
   * Kata's `watchable-bind` storages for secrets and configmaps when a filesystem is shared (the
   * agent keeps a polled copy so inotify works in the container). Default true, as Kata; false
   * gives a plain shared bind.
   */
  watchableBind?: boolean;
  /** Kata's rootfsSuffix, default `rootfs`. */
  rootfsSuffix?: string;
  /** The bundle directory, to resolve a relative `root.path` (runc's `rootfs`). */
  bundle?: string;
  /** Guest: where the shared filesystem is mounted, default `/run/kata-containers/shared/containers`. */
  guestSharedDir?: string;
  /** Guest: the sandbox directory, default `/run/kata-containers/sandbox` (shm lives here). */
  guestSandboxDir?: string;
  /** Guest: ephemeral (tmpfs, hugetlbfs) volumes, default `<guestSandboxDir>/ephemeral`. */
  guestEphemeralDir?: string;
  /** Guest: block volumes, default `<guestSandboxDir>/storage`. */
  guestStorageDir?: string;
  /** Host: Kata's per-sandbox share root, default `/run/kata-containers/shared/sandboxes`. */
  hostSharedDir?: string;
  /** Host path (as in the spec's mount source or the rootfs) -> where the runtime attached it. */
  blockDevices?: Record<string, AttachedBlockDevice>;
  /** Host path (a mount source) -> what is there. */
  volumes?: Record<string, HostVolume>;
}

export interface ResolvedSettings {
  sandboxId: string;
  sharedFs: SharedFs;
  virtioFsCache: VirtioFsCache;
  virtioFsCacheSize: number;
  msize9p: number;
  blockDeviceDriver: BlockDeviceDriver;
  shmSize: number;
  disableGuestEmptyDir: boolean;
  watchableBind: boolean;
  rootfsSuffix: string;
  bundle: string | undefined;
  guestSharedDir: string;
  guestSandboxDir: string;
  guestEphemeralDir: string;
  guestStorageDir: string;
  hostSharedDir: string;
  blockDevices: ReadonlyMap<string, AttachedBlockDevice>;
  volumes: ReadonlyMap<string, HostVolume>;
}

/** Kata's guest paths (kata_agent.go: defaultKataGuestSharedDir, defaultKataGuestSandboxDir). */
export const KATA_GUEST_SHARED_DIR = '/run/kata-containers/shared/containers';
export const KATA_GUEST_SANDBOX_DIR = '/run/kata-containers/sandbox';
export const KATA_HOST_SHARED_DIR = '/run/kata-containers/shared/sandboxes';
/** Kata's DefaultShmSize (mount.go): 64 MiB. */
export const DEFAULT_SHM_SIZE = 65536 * 1024;

/** Every `shared_fs` Kata knows, in the order errors and help list them. */
export const SHARED_FS_VALUES: readonly SharedFs[] = ['virtio-fs', 'virtio-9p', 'none'];
const cacheValues: readonly VirtioFsCache[] = ['never', 'metadata', 'auto', 'always'];
/** Every `block_device_driver` Kata knows. */
export const BLOCK_DEVICE_DRIVERS: readonly BlockDeviceDriver[] = [
  'virtio-blk',
  'virtio-scsi',
  'virtio-mmio',
  'virtio-blk-ccw',
  'nvdimm',
];
const volumeKinds = ['directory', 'file', 'block', 'char', 'socket', 'fifo'];

function bad(path: string, value: unknown, why: string): Error {
  return planError('ERR_INVALID_RUNTIME_SETTINGS', path, value, why);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function own(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

function oneOf<T extends string>(o: Record<string, unknown>, key: string, values: readonly T[], dflt: T): T {
  const v = own(o, key);
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !values.includes(v as T))
    throw bad(key, v, `must be one of ${values.map((x) => `'${x}'`).join(', ')}`);
  return v as T;
}

function integer(o: Record<string, unknown>, key: string, dflt: number, min = 0): number {
  const v = own(o, key);
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw bad(key, v, `must be an integer >= ${min}`);
  return v;
}

function flag(o: Record<string, unknown>, key: string, dflt = false): boolean {
  const v = own(o, key);
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw bad(key, v, 'must be a boolean');
  return v;
}

function name(o: Record<string, unknown>, key: string, dflt: string | undefined): string | undefined {
  const v = own(o, key);
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || v === '' || v.includes('/') || v.includes('\0') || v === '.' || v === '..') {
    throw bad(key, v, 'must be a non-empty name without "/" or NUL');
  }
  return v;
}

function absDir(o: Record<string, unknown>, key: string, dflt: string | undefined): string | undefined {
  const v = own(o, key);
  if (v === undefined) return dflt;
  if (
    typeof v !== 'string' ||
    !v.startsWith('/') ||
    v.includes('\0') ||
    (v.length > 1 && (cleanPath(v) !== v || v.endsWith('/')))
  ) {
    throw bad(key, v, 'must be an absolute, normalized path');
  }
  return v;
}

function stringList(v: unknown, path: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((e) => typeof e !== 'string' || e.includes('\0')))
    throw bad(path, v, 'must be an array of strings');
  return [...(v as string[])];
}

function optString(d: Record<string, unknown>, key: string, path: string): string | undefined {
  const v = own(d, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '' || v.includes('\0')) throw bad(at(path, key), v, 'must be a non-empty string');
  return v;
}

function blockDevice(v: unknown, path: string): AttachedBlockDevice {
  if (!isRecord(v)) throw bad(path, v, 'must be an object');
  const d: AttachedBlockDevice = {};
  for (const k of ['pciPath', 'scsiAddr', 'devNo', 'virtPath', 'pmem', 'fstype', 'encryptionKey'] as const) {
    const s = optString(v, k, path);
    if (s !== undefined) d[k] = s;
  }
  const options = stringList(own(v, 'options'), at(path, 'options'));
  if (options !== undefined) d.options = options;
  for (const k of ['createFilesystem', 'shared'] as const) {
    const b = own(v, k);
    if (b === undefined) continue;
    if (typeof b !== 'boolean') throw bad(at(path, k), b, 'must be a boolean');
    d[k] = b;
  }
  const g = own(v, 'fsGroup');
  if (g !== undefined) {
    if (!isRecord(g)) throw bad(at(path, 'fsGroup'), g, 'must be { groupId, groupChangePolicy? }');
    const id = own(g, 'groupId');
    // Kata (handleDeviceBlockVolume) refuses gid 0 and anything beyond uint32.
    if (typeof id !== 'number' || !Number.isInteger(id) || id <= 0 || id > 0xfffffffe) {
      throw bad(at(at(path, 'fsGroup'), 'groupId'), id, 'must be an integer gid from 1 to 4294967294');
    }
    const policy = own(g, 'groupChangePolicy');
    if (policy !== undefined && policy !== 'Always' && policy !== 'OnRootMismatch') {
      throw bad(at(at(path, 'fsGroup'), 'groupChangePolicy'), policy, "must be 'Always' or 'OnRootMismatch'");
    }
    d.fsGroup = policy === undefined ? { groupId: id } : { groupId: id, groupChangePolicy: policy };
  }
  for (const k of Object.keys(v)) {
    if (
      ![
        'pciPath',
        'scsiAddr',
        'devNo',
        'virtPath',
        'pmem',
        'fstype',
        'encryptionKey',
        'options',
        'createFilesystem',
        'shared',
        'fsGroup',
      ].includes(k)
    ) {
      throw bad(at(path, k), v[k], 'is not a block device property');
    }
  }
  return d;
}

function hostVolume(v: unknown, path: string): HostVolume {
  if (!isRecord(v)) throw bad(path, v, 'must be an object');
  // A misspelt key (subpathOf) is named, not ignored: ignored, it would plan silently as Kata does.
  for (const k of Object.keys(v)) {
    if (!['fstype', 'options', 'gid', 'kind', 'subPathOf', 'subPath'].includes(k))
      throw bad(at(path, k), v[k], 'is not a volume property');
  }
  const h: HostVolume = {};
  const fstype = optString(v, 'fstype', path);
  if (fstype !== undefined) h.fstype = fstype;
  const options = stringList(own(v, 'options'), at(path, 'options'));
  if (options !== undefined) h.options = options;
  const gid = own(v, 'gid');
  if (gid !== undefined) {
    if (typeof gid !== 'number' || !Number.isInteger(gid) || gid < 0 || gid > 0xfffffffe)
      throw bad(at(path, 'gid'), gid, 'must be an integer gid');
    h.gid = gid;
  }
  const kind = own(v, 'kind');
  if (kind !== undefined) {
    if (typeof kind !== 'string' || !volumeKinds.includes(kind))
      throw bad(at(path, 'kind'), kind, `must be one of ${volumeKinds.join(', ')}`);
    h.kind = kind as HostVolume['kind'];
  }
  const of = own(v, 'subPathOf');
  const sub = own(v, 'subPath');
  if (of !== undefined || sub !== undefined) {
    if (of === undefined || sub === undefined) {
      const [given, missing] = of === undefined ? ['subPath', 'subPathOf'] : ['subPathOf', 'subPath'];
      throw bad(at(path, given), own(v, given), `needs ${missing} too: the volume's host path and the path inside it`);
    }
    if (typeof of !== 'string' || !of.startsWith('/') || of.includes('\0') || cleanPath(of) !== of)
      throw bad(at(path, 'subPathOf'), of, "must be the volume's absolute, normalized host path");
    // kubelet refuses the same (validation of volumeMounts[].subPath): absolute or with '..'.
    if (
      typeof sub !== 'string' ||
      sub === '' ||
      sub.startsWith('/') ||
      sub.includes('\0') ||
      posix.normalize(sub) !== sub ||
      sub.endsWith('/') ||
      sub === '.' ||
      sub.split('/').includes('..')
    ) {
      throw bad(at(path, 'subPath'), sub, 'must be a relative, normalized path inside the volume (no "..")');
    }
    h.subPathOf = of;
    h.subPath = sub;
  }
  return h;
}

function hostPathMap<T>(
  o: Record<string, unknown>,
  key: string,
  each: (v: unknown, path: string) => T,
): Map<string, T> {
  const v = own(o, key);
  const m = new Map<string, T>();
  if (v === undefined) return m;
  if (!isRecord(v)) throw bad(key, v, 'must be an object keyed by host path');
  for (const [hostPath, entry] of Object.entries(v)) {
    const path = at(key, hostPath);
    if (!hostPath.startsWith('/') || hostPath.includes('\0'))
      throw bad(path, hostPath, 'keys must be absolute host paths');
    m.set(cleanPath(hostPath), each(entry, path));
  }
  return m;
}

/** Checks the settings once and fills in Kata's defaults. Throws ERR_INVALID_RUNTIME_SETTINGS. */
export function resolveSettings(settings: unknown, containerId?: string): ResolvedSettings {
  if (settings === undefined) settings = {};
  if (!isRecord(settings)) throw bad('settings', settings, 'must be an object');
  const o = settings;
  const known = new Set([
    'sandboxId',
    'sharedFs',
    'virtioFsCache',
    'virtioFsCacheSize',
    'msize9p',
    'blockDeviceDriver',
    'shmSize',
    'disableGuestEmptyDir',
    'watchableBind',
    'rootfsSuffix',
    'bundle',
    'guestSharedDir',
    'guestSandboxDir',
    'guestEphemeralDir',
    'guestStorageDir',
    'hostSharedDir',
    'blockDevices',
    'volumes',
  ]);
  for (const k of Object.keys(o)) if (!known.has(k)) throw bad(k, o[k], 'is not a runtime setting');
  const guestSandboxDir = absDir(o, 'guestSandboxDir', KATA_GUEST_SANDBOX_DIR)!;
  return {
    sandboxId: name(o, 'sandboxId', containerId) ?? '',
    sharedFs: oneOf(o, 'sharedFs', SHARED_FS_VALUES, 'virtio-fs'),
    virtioFsCache: oneOf(o, 'virtioFsCache', cacheValues, 'auto'),
    virtioFsCacheSize: integer(o, 'virtioFsCacheSize', 0),
    msize9p: integer(o, 'msize9p', 8192, 1),
    blockDeviceDriver: oneOf(o, 'blockDeviceDriver', BLOCK_DEVICE_DRIVERS, 'virtio-scsi'),
    shmSize: integer(o, 'shmSize', 0),
    disableGuestEmptyDir: flag(o, 'disableGuestEmptyDir'),
    watchableBind: flag(o, 'watchableBind', true),
    rootfsSuffix: name(o, 'rootfsSuffix', 'rootfs')!,
    bundle: absDir(o, 'bundle', undefined),
    guestSharedDir: absDir(o, 'guestSharedDir', KATA_GUEST_SHARED_DIR)!,
    guestSandboxDir,
    guestEphemeralDir: absDir(o, 'guestEphemeralDir', posix.join(guestSandboxDir, 'ephemeral'))!,
    guestStorageDir: absDir(o, 'guestStorageDir', posix.join(guestSandboxDir, 'storage'))!,
    hostSharedDir: absDir(o, 'hostSharedDir', KATA_HOST_SHARED_DIR)!,
    blockDevices: hostPathMap(o, 'blockDevices', blockDevice),
    volumes: hostPathMap(o, 'volumes', hostVolume),
  };
}
