// What a storage driver implements (StorageHandler) and what the Sandbox hands it (StorageContext,
// ReleaseContext). Kept apart from the registry and the driver list so that handlers depend on
// this file alone, never on the list that names them.
import type { MountApi } from './mount';
import type { Placement, PreparedStorage, Storage } from './storage';

/**
 * What a handler's devices() gets: where to look for devices, how long to wait, and the channel
 * to report each wait on. Its `signal` aborts the caller's request, and also this storage's waits
 * alone when the request no longer needs them (it failed, or the mount point turned out held).
 */
export interface DeviceContext {
  readonly driver: string;
  readonly containerId?: string;
  readonly signal?: AbortSignal;
  readonly sysfsRoot: string;
  readonly devRoot: string;
  readonly allowedRoots: readonly string[];
  /** Milliseconds; counted from the request's start, when the Sandbox starts every wait at once. */
  readonly hotplugTimeoutMs: number;
  /** Times a device wait and reports it on the `kata-storage:wait` channel. */
  waitFor(source: string, wait: () => Promise<string>): Promise<string>;
}

export interface StorageContext extends DeviceContext {
  /**
   * What the handler's devices() resolved with for this storage, started when the request
   * started; present exactly when the handler has devices(). Awaiting it rejects as the wait did.
   */
  readonly devices?: Promise<string[]>;
  /** How often watchable-bind storages poll their source (the Sandbox's watchIntervalMs). */
  readonly watchIntervalMs: number;
  /** The Sandbox's mount API, for mounts a handler makes outside create (watchable-bind's fallback). */
  readonly mountApi: MountApi | undefined;
  /** Where the storage's mount point lies (its allowed root and the path below it). */
  readonly placement: Placement;
  /**
   * Creates the mount point (a file when `file`, for binding a device node) and its missing
   * parents beneath the allowed root, refusing symlinks; whatever it creates is removed again
   * on release or rollback.
   */
  makeMountPoint(opts?: { file?: boolean }): Promise<void>;
  /** Creates a directory (and parents) beneath an allowed root; on release it goes with its content. */
  makeDirectory(path: string): Promise<void>;
  /** Mounts through the package's mount() and records it, so release or rollback unmounts it. */
  mount(source: string, target: string, fstype: string, options?: readonly string[]): Promise<void>;
  /**
   * makeMountPoint() then mount() onto the storage's mount point, then the storage's fsGroup
   * (Kata's set_ownership) and `fsgid` (the root's group and setgid bit), both skipped when the
   * mount is read-only: one native job, recorded for release and rollback as those are, and
   * published on `kata-storage:mount` like mount(). `premount`: a mount of `source` and `fstype`
   * already at the mount point (Kata's guest pre-mount of the shared filesystem) is accepted as
   * it is, never recorded (so never unmounted by us), fsGroup still applied, nothing published.
   * `directory`: nothing is mounted; the mount point is a `local` directory (StorageSteps.directory).
   */
  mountAtMountPoint(
    source: string,
    fstype: string,
    options?: readonly string[],
    opts?: { file?: boolean; fsgid?: number; premount?: boolean; directory?: StorageSteps['directory'] },
  ): Promise<void>;
}

/** What StorageHandler.steps returns: the mount of the storage's mount point and what follows it. */
export interface StorageSteps {
  /** The mount's source; with `device`, the storage's own (its bus address), replaced by the node found. */
  readonly source: string;
  /**
   * 'block': the source is the node the handler's devices() finds. The Sandbox waits for every
   * device of the request at once, then runs the job, which checks each such node is a block
   * device (stat(2), S_ISBLK; else ERR_NOT_BLOCK_DEVICE) before anything is touched.
   */
  readonly device?: 'block';
  /** The mount point is a file (a device node bound onto it, vhost-user-blk). */
  readonly file?: boolean;
  /**
   * virtio-fs, 9p: a mount of this source and fstype already at the mount point (Kata's guest
   * pre-mount of the shared filesystem, the topmost mount there as mountinfo lists it) is
   * accepted as it is: nothing mounted or recorded, so never unmounted by us; fsGroup applies.
   */
  readonly premount?: boolean;
  /**
   * overlayfs: directories made beneath their allowed roots before the mount (its upperdir and
   * workdir), their walks checked with the mount point's; each one the job creates is removed
   * with its content on release, as `ctx.makeDirectory`'s are.
   */
  readonly directories?: readonly Placement[];
  /**
   * local: the mount point is the storage, a directory, and nothing is mounted (source, fstype
   * and options are not used). Kata's local handler's steps follow: its group `fsgid` (chown),
   * its `mode` (with setgid when fsgid is set), then fsGroup, never skipped. The handler's
   * release() still runs (it removes the directory with its content).
   */
  readonly directory?: { readonly mode?: number };
  readonly fstype: string;
  readonly options: readonly string[];
  /** ephemeral's `fsgid=`: the mount root's group, and its setgid bit, after fsGroup. */
  readonly fsgid?: number;
}

export interface ReleaseContext {
  readonly driver: string;
  /** The storage as it was added. */
  readonly storage: Storage;
  /** True when this sandbox created the mount point (so it may remove it). */
  readonly createdMountPoint: boolean;
}

/** What a driver's resume() gets: the storage's mounts as recorded, and the Sandbox's settings. */
export interface ResumeContext {
  /** Its mounts, oldest first, each by path and mount ID, all found in place. */
  readonly mounts: readonly { readonly path: string; readonly id: number }[];
  readonly watchIntervalMs: number;
  readonly mountApi: MountApi | undefined;
}

export interface StorageHandler {
  /**
   * Driver-specific checks, run for the whole request before anything is touched. Throws. What it
   * returns (the driver's own options, parsed) reaches create() as `storage.driverData`.
   */
  validate?(storage: PreparedStorage, ctx: { allowedRoots: readonly string[]; containerId?: string }): unknown;
  /**
   * Built-in block drivers: finds the device nodes this storage needs (`/dev/vdb`), waiting up to
   * `ctx.hotplugTimeoutMs` for a disk still being hot-plugged, in the order create() uses them.
   * The Sandbox starts devices() for every storage of a request at once, right after validation
   * (skipping storages whose mount point is already held): a request's latency is its longest
   * wait, not the sum (Kata's agent waits storage by storage). A request whose storages all have
   * steps is then one job once every device is found (a wait that fails ends it, nothing made);
   * otherwise the storages are made one by one in request order, each create() getting its result
   * as `ctx.devices`. When the request fails, or the storage's mount point is held by the time its
   * turn comes, its waits are aborted through `ctx.signal` and their result is never used; the
   * request settles only once devices() has, so devices() must settle promptly when `ctx.signal`
   * aborts (the built-in finders reject with ABORT_ERR at once and free their native waiter).
   */
  devices?(storage: PreparedStorage, ctx: DeviceContext): Promise<string[]>;
  /** Makes the storage exist; resolves with the path to hold (normally the mount point). */
  create(storage: PreparedStorage, ctx: StorageContext): Promise<string>;
  /**
   * Built-in drivers: the storage as steps the native core carries out, with the rest of the
   * request, in one job (mount point beneath its root, mount, fsGroup, then `fsgid`), recorded for
   * release and rollback as create() would; a disk (`device: 'block'`) once devices() found it.
   * Undefined when this storage needs create() (huge pages, mkfs, dm-verity, a pre-mount to
   * accept). The Sandbox calls create() instead only when another storage of the request has no
   * steps.
   */
  steps?(storage: PreparedStorage): StorageSteps | undefined;
  /** Cleanup other than the unmounts and directories the context recorded. */
  release?(path: string, ctx: ReleaseContext): Promise<void>;
  /**
   * A restarted agent's Sandbox (`statePath`) adopted this storage, its mounts found in place:
   * restart what lived only in the old process's memory (watchable-bind's polling). Rejecting is
   * reported in Sandbox.recovery's `errors`; the storage stays adopted.
   */
  resume?(storage: Storage, ctx: ResumeContext): Promise<void>;
}
