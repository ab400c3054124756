// The one place the compiled addon is loaded, and its type: every function it exports, with the
// shapes that cross. Nothing else in lib/ requires the .node file; the rest of lib/ reaches it
// through this folder's index.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { StorageError, nativeError } from '../errors';

/** How a device wait ended: found (and how), timed out (with what was seen), or an error. */
export type DeviceWaitResult =
  | { path: string; via: 'sysfs' | 'sysfs-poll' | 'cache' | 'uevent' | 'cancelled' }
  | { errno: number; awaited: string; nearest: string[]; timeoutMs: number; failures: Error[] }
  | Error;

/** Which new-API system calls this process may make (probed once, with arguments that do nothing). */
export interface NewMountApiSupport {
  fsopen: boolean;
  fsconfig: boolean;
  fsmount: boolean;
  move_mount: boolean;
  open_tree: boolean;
  mount_setattr: boolean;
  /** Used for `beneath`; without it the target is walked one O_NOFOLLOW component at a time. */
  openat2: boolean;
  /** Needed only to remount through the new API (fspick + FSCONFIG_CMD_RECONFIGURE). */
  fspick: boolean;
  /** Every mount call is usable: `'auto'` picks the new API. */
  complete: boolean;
  /** overlayfs takes its layers one by one (`lowerdir+`, Linux 6.8+): a lowerdir over 255 bytes can take the new API. */
  overlayLowerdirPlus: boolean;
}

/**
 * The addon. Every failure it reports is already the final error, built by errors.ts's
 * nativeError (handed over at load): a Node-shaped system error or a StorageError.
 */
export interface NativeBinding {
  /** Shared results of parseMountOptions: [flags, propagation, recursiveFlags]. */
  readonly scratch: Uint32Array;
  readonly mountFlags: Record<string, number>;
  /** The most storages a memory-only applyStorages runs on the calling thread; more go to the pool. */
  readonly maxStoragesHere: number;
  /** Hands the addon the one converter of its error records (errors.ts's nativeError). */
  setErrorConstructor(nativeError: (...args: never[]) => Error): void;
  parseMountOptions(list: string): string | Error;
  optionWords(list: string): string[];
  mountSync(...args: NativeMountArgs): Error | undefined;
  mount(...args: NativeMountArgs): Promise<Error | undefined>;
  /** With recordId: resolves with the new mount's ID (release.h MountIdAt; 0 unknown) instead. */
  mount(...args: [...Required<NativeMountArgs>, recordId: true]): Promise<Error | number>;
  effectiveMountApi(api: number, list: string): 'new' | 'legacy' | Error;
  /**
   * One job for a request's storages (native/core/storage_steps): each mount point created beneath
   * its root, mounted, then fsGroup/fsgid applied unless the mount is read-only. On a failure the
   * job undoes that storage and those before it; outcomes then hold what could not be undone.
   */
  applyStorages(fields: string, numbers: Float64Array, mayRunHere?: boolean): AppliedTuple | Promise<AppliedTuple>;
  /**
   * One job releasing storages (native/core/release.h): each recorded mount, newest first, with
   * whatever sits on or beneath it (EBUSY retried), then what was created. `here`: see
   * releaseStorageJobs.
   */
  releaseStorages(
    fields: string,
    numbers: Float64Array,
    perPath: Float64Array,
    busyTimeoutMs: number,
    here?: boolean,
  ): Promise<ReleasedTuple>;
  newMountApiSupport(): NewMountApiSupport;
  /** Remount with new superblock options (api 0 auto, 1 new, 2 legacy): which API ran, or the error. */
  remount(target: string, list: string, api?: number): Promise<'new' | 'legacy' | Error>;
  /** The dm-verity target line for DmVerityInfo fields, or the offending field's name. */
  verityTable(
    hashtype: string,
    hash: string,
    blocknum: number,
    blocksize: number,
    hashsize: number,
    offset: number,
    salt: string,
    hashType: number,
    noSuperblock: boolean,
    dataDev: string,
  ): { params: string; sectors: number } | Error;
  /** DM_DEV_CREATE + DM_TABLE_LOAD (verity, read-only) + resume + mknod `node`. */
  dmVerityCreate(
    control: string,
    name: string,
    sectors: number,
    params: string,
    node: string,
  ): Promise<{ major: number; minor: number } | Error>;
  /** DM_DEV_REMOVE (deferred: when its last opener closes) and unlink of `node`. */
  dmRemove(control: string, name: string, node: string, deferred: boolean): Promise<Error | undefined>;
  umountSync(
    target: string,
    detach: boolean,
    force: boolean,
    expire: boolean,
    busyTimeoutMs: number,
  ): Error | undefined;
  umount(
    target: string,
    detach: boolean,
    force: boolean,
    expire: boolean,
    busyTimeoutMs: number,
  ): Promise<Error | undefined>;
  isMountPoint(path: string): boolean | Error;
  /** The ID (of the kind mounts are recorded by) of the mount a walk to `path` reaches, or -errno. */
  mountIdAt(path: string): number;
  /** Whether each recorded mount (paths NUL-terminated, ids beside them) is still in place at its path. */
  recordedMountsPresent(paths: string, ids: Float64Array): boolean[] | Error;
  /** One of the crash points KATA_STORAGE_FAULT_KILL_AT counts (native/core/fault.h). */
  crashPoint(): void;
  /** Walks `rel` beneath `root` without creating anything: a symlink or non-directory on the way comes back as a code. */
  checkBeneath(root: string, rel: string): Error | { stop: 'symlink' | 'notdir'; path: string } | undefined;
  /** Creates the missing components of `rel` beneath `root` (O_NOFOLLOW walk); resolves with the paths it created. */
  makeBeneath(root: string, rel: string, mode: number, leafFile: boolean): Promise<string[] | Error>;
  /** Removes a tree, refusing (EBUSY, nothing deleted) if a mount lies anywhere in it. */
  removeTree(path: string): Promise<Error | undefined>;
  /** flock(fd, LOCK_EX | LOCK_NB): true held now, false held by another open of the file. */
  lockFile(fd: number): boolean | Error;
  /** rmdir, or unlink for a non-directory, on the addon's threads. */
  removeEntry(path: string): Promise<Error | undefined>;
  applyFsGroup(
    path: string,
    gid: number,
    readOnly: boolean,
    onRootMismatch: boolean,
  ): Promise<{ skipped: boolean; changed: number } | Error>;
  ensureHugepages(
    sysfsRoot: string,
    pageKb: number,
    pages: number,
  ): Promise<{ previous: number; allocated: number } | Error>;
  /** [rootComplex or -1, slot, fn, slot, fn, ...] */
  parsePciPath(path: string): number[] | Error;
  parseCcwDevice(busId: string): number[] | Error;
  parseScsiAddress(addr: string): number[] | Error;
  pciPathToSysfs(path: string, sysfsRoot: string, rootComplex: string): string | Error;
  /** The node path when the device is there now, null when it is not (yet). */
  findBlockDevice(
    bus: number,
    spec: string,
    rootComplex: string,
    sysfsRoot: string,
    devRoot: string,
  ): string | null | Error;
  waitBlockDevice(
    bus: number,
    spec: string,
    rootComplex: string,
    sysfsRoot: string,
    devRoot: string,
    timeoutMs: number,
    rescan: boolean,
  ): [id: number, result: Promise<DeviceWaitResult>];
  cancelDeviceWait(id: number): void;
  /** [0 block | 1 char | 2 other, major, minor] */
  deviceNumber(path: string): number[] | Error;
  ueventMonitorState(): UeventMonitorState;
}

/**
 * applyStorages' result as it crosses. Memory-only requests (native/core CannotBlock) run on the
 * calling thread and return it as it is; the rest return it through a promise.
 */
export type AppliedTuple = [
  counts: Float64Array,
  paths: string,
  failed: number,
  error?: Error,
  undoErrors?: Error[],
  refusal?: [stop: 'symlink' | 'notdir', path: string],
  mountIds?: Float64Array,
];
export type ReleasedTuple = [
  numbers: Float64Array,
  leftovers: string,
  errors: (Error | undefined)[] | undefined,
  leftoverErrors: Error[] | undefined,
  steps: Float64Array,
  stepPaths: string,
  stepErrors?: (Error | undefined)[],
];

export const packageRoot = join(__dirname, '..', '..');

/** Loads the addon from `root` (build/ or prebuilds/), or says precisely what it tried. */
export function loadBinding(root: string = packageRoot): NativeBinding {
  // An explicit addon (a sanitizer build, say) wins over node-gyp-build's search.
  const explicit = process.env.KATA_STORAGE_ADDON;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (explicit) return require(explicit) as NativeBinding;
    return nodeGypBuild(root) as NativeBinding;
  } catch (cause) {
    const prebuildsOnly = Boolean(process.env.PREBUILDS_ONLY);
    const tried = explicit
      ? [explicit]
      : [
          ...(prebuildsOnly ? [] : [join(root, 'build', 'Release'), join(root, 'build', 'Debug')]),
          join(root, 'prebuilds', `${process.platform}-${process.arch}`),
        ];
    const lines = tried.map((p) => `  ${p}${existsSync(p) ? '' : ' (missing)'}`);
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new StorageError(
      'ERR_NATIVE_LOAD',
      `kata-storage: cannot load the native addon for ${process.platform}-${process.arch} ` +
        `(Node ${process.version}, Node-API ${process.versions.napi}${prebuildsOnly ? ', PREBUILDS_ONLY' : ''}).\n` +
        `Tried:\n${lines.join('\n')}\nReason: ${reason}\n` +
        'Supported prebuilt platforms: linux-x64, linux-arm64, linux-s390x (glibc >= 2.28). ' +
        'Elsewhere build from source: apt-get install cmake g++ make && npm install -D cmake-js@8 node-addon-api@8 ' +
        '&& npm rebuild kata-storage --build-from-source',
      { cause },
    );
  }
}

export const native: NativeBinding = loadBinding();

/** State of the shared uevent listener: whether its thread runs, events seen and cached, netlink overflows, live waiters and matches. */
export interface UeventMonitorState {
  running: boolean;
  events: number;
  cached: number;
  overflows: number;
  waiters: number;
  matched: number;
}
native.setErrorConstructor(nativeError);

/** mountSync/mount's arguments; api: 0 auto, 1 new, 2 legacy (default 0); beneath: '' for none. */
export type NativeMountArgs = [
  source: string,
  target: string,
  fstype: string,
  list: string,
  api?: number,
  beneath?: string,
];
