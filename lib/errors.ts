// Errors shaped like Node's own: system-call failures carry code/errno/syscall/path/dest exactly as
// fs errors do; our own failures are StorageError with a stable `code` and the offending value.
import { readFileSync } from 'node:fs';
import { getSystemErrorMap } from 'node:util';

/**
 * Every code a StorageError of this package carries, with the fields it adds besides `code`,
 * `message` and `value` (the refused input).
 */
export interface StorageErrorFields {
  /**
   * A Storage field is wrong: `field` names it ('mountPoint', 'fsGroup.groupId', 'source', ...);
   * `path` is the symlink or non-directory met on the way to the mount point; `verityField` the
   * field of a `verity_info=` driver option; `option` the overlay option (`upperdir`, `workdir`)
   * whose directory is refused (`path` is that directory, as overlayfs unescapes it).
   */
  ERR_INVALID_STORAGE: { value: unknown; field: string; path?: string; verityField?: string; option?: string };
  /** No handler is registered for `value` (the driver); `registered` lists the drivers that are. */
  ERR_UNKNOWN_STORAGE_DRIVER: { value: string; registered: string[] };
  /** A mount option or driver option is refused: `loop`, rro with the legacy API, bad mode=/fsgid=/size=/pagesize=, unsupported driver options. */
  ERR_INVALID_MOUNT_OPTION: { value: string };
  /** The mount data is longer than the page the kernel copies (page size - 1 bytes; overlayfs layers counted relative to their common parent). */
  ERR_MOUNT_OPTIONS_TOO_LONG: { value: string };
  ERR_INVALID_PCI_PATH: { value: string };
  ERR_INVALID_CCW_DEVICE: { value: string };
  ERR_INVALID_SCSI_ADDRESS: { value: string };
  /** stat(2) says the path is not S_ISBLK. */
  ERR_NOT_BLOCK_DEVICE: { value: string };
  /** stat(2) says the path is neither S_ISBLK nor S_ISCHR. */
  ERR_NOT_DEVICE_NODE: { value: string };
  /** The sandbox holds no storage at `value`. */
  ERR_STORAGE_NOT_FOUND: { value: string };
  /** addStorages: a new mount at `value` (a mount point) would hide `covered`, a path the sandbox holds (or is mounting) beneath it. */
  ERR_MOUNT_POINT_COVERS_STORAGE: { value: string; covered: string };
  ERR_STORAGE_DRIVER_EXISTS: { value: string };
  /** The sysfs tree cannot be walked as the kernel lays it out; `errno`/`syscall` when a system call failed. */
  ERR_SYSFS: { value: string; errno?: number; syscall?: string };
  /** The addon could not be loaded (platform without a prebuild, musl, glibc < 2.28); `cause` is the loader's error. */
  ERR_NATIVE_LOAD: { cause: unknown };
  /** mkfs.ext4 of `value` (the device) failed; `cause` is the child-process error. */
  ERR_MKFS_FAILED: { value: string; cause: unknown };
  /** The kernel allocated `allocated` of the `value` huge pages asked for (the count was put back). */
  ERR_HUGEPAGES_UNAVAILABLE: { value: number; allocated: number };
  /** updateEphemeralMounts: the new size= (or nr_inodes=) is below what the tmpfs at `value` already uses. */
  ERR_EPHEMERAL_SIZE_TOO_SMALL: {
    value: string;
    usedBytes?: number;
    requestedBytes?: number;
    usedInodes?: number;
    requestedInodes?: number;
  };
  /**
   * kata-storage apply: the mount point `value` is already a mount point (an earlier `apply --keep`
   * not yet released, or someone else's mount); nothing was mounted.
   */
  ERR_ALREADY_MOUNTED: { value: string };
  /** The Sandbox was destroyed: addStorages and setSandboxStorage are refused (`value` is 'destroyed'). */
  ERR_SANDBOX_DESTROYED: { value: 'destroyed' };
  /** The Sandbox's journal (`statePath`, `value`) cannot be opened, read, appended to or compacted; `cause` is the system error. */
  ERR_JOURNAL: { value: string; cause: unknown; locked?: boolean; damagedAt?: number };
  /** A Sandbox option is unusable (allowedRoots not absolute, normalized paths). */
  ERR_INVALID_ARG_VALUE: { value: unknown };
  /** kata-storage/runtime: the OCI spec is malformed or asks for something the guest cannot do; `path` is where in the spec (`mounts[3].destination`). */
  ERR_INVALID_SPEC: { value: unknown; path: string };
  /** kata-storage/runtime: a runtime setting is malformed (unknown sharedFs, block driver, ...); `path` is where in the settings (`blockDevices["/dev/sdb"].pciPath`). */
  ERR_INVALID_RUNTIME_SETTINGS: { value: unknown; path: string };
  /** kata-storage/runtime: the mount at `path` (`mounts[3].source`) is a block volume, but the runtime attached no device for `value`. */
  ERR_BLOCK_DEVICE_NOT_ATTACHED: { value: unknown; path: string };
}

export type StorageErrorCode = keyof StorageErrorFields;

/** A StorageError narrowed to one code, with that code's fields. */
export type StorageErrorOf<C extends StorageErrorCode> = StorageError & { readonly code: C } & Readonly<
    StorageErrorFields[C]
  >;

/** Errors a Sandbox attaches when undoing or cleaning up also failed (on the error it rethrows). */
export interface SandboxErrorFields {
  /** addStorages: failures while giving back what the failed request had taken. */
  rollbackErrors?: Error[];
  /** removeContainer/destroy: the cleanup failures after the first (which is the error thrown). */
  cleanupErrors?: Error[];
}

export class StorageError extends Error implements SandboxErrorFields {
  readonly code: StorageErrorCode;
  /** The input that was refused, when there is one. */
  declare readonly value?: unknown;
  /** ERR_INVALID_STORAGE: the Storage field at fault. */
  declare readonly field?: string;
  /**
   * ERR_INVALID_STORAGE: the symlink or non-directory met on the way to the mount point;
   * kata-storage/runtime's codes: where in the OCI spec or the settings the offending value is.
   */
  declare readonly path?: string;
  /** ERR_HUGEPAGES_UNAVAILABLE: the pages the kernel did allocate. */
  declare readonly allocated?: number;
  /** ERR_SYSFS: the failed system call's errno (negative, as Node's) and name. */
  declare readonly errno?: number;
  declare readonly syscall?: string;
  declare rollbackErrors?: Error[];
  declare cleanupErrors?: Error[];

  constructor(
    code: StorageErrorCode,
    message: string,
    props?: { value?: unknown; cause?: unknown } & Record<string, unknown>,
  ) {
    super(message, props && 'cause' in props ? { cause: props.cause } : undefined);
    this.code = code;
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k !== 'cause') (this as Record<string, unknown>)[k] = v;
      }
    }
  }

  override get name(): string {
    return 'StorageError';
  }
}

/**
 * True when `err` is a StorageError (with `code`, when given), narrowed to that code's fields:
 * `if (isStorageError(err, 'ERR_INVALID_STORAGE')) console.log(err.field)`.
 */
export function isStorageError<C extends StorageErrorCode = StorageErrorCode>(
  err: unknown,
  code?: C,
): err is StorageErrorOf<C> {
  return err instanceof StorageError && (code === undefined || err.code === code);
}

/** A failed system call, the way Node reports one (`err.errno` is negative, as in Node). */
export interface SystemError extends Error, SandboxErrorFields {
  /** The errno name, e.g. 'EBUSY'. */
  code: string;
  /** Negative, as in Node. */
  errno: number;
  /** 'mount', 'umount2', 'fsconfig', 'openat2', 'uevent' (a device wait), ... */
  syscall: string;
  path?: string;
  /** mount: the target. */
  dest?: string;
  /** New mount API: the filesystem's own messages read from the filesystem context (also in `message`). */
  kernelMessages?: string[];
  /** ETIMEDOUT of a device wait: what was awaited, e.g. 'virtio-blk disk at PCI path 02 (...)'. */
  awaited?: string;
  /** ETIMEDOUT of a device wait: the nearest uevents seen meanwhile. */
  nearestEvents?: string[];
  /** ETIMEDOUT of a device wait: the candidate devices that failed on the way, each with why. */
  details?: TargetFailure[];
  /** EPERM of a bind remount: the flags the kernel refuses to clear (locked by a more privileged namespace). */
  detail?: string;
  /** ENODEV of a mount: the filesystem type this kernel does not know (not in /proc/filesystems). */
  fstype?: string;
}

let errorMap: Map<number, [string, string]> | undefined;

function describe(errno: number): [string, string] {
  errorMap ??= getSystemErrorMap();
  return errorMap.get(-Math.abs(errno)) ?? [`Unknown system error ${-Math.abs(errno)}`, 'unknown error'];
}

/** Builds a Node-shaped system error from a positive or negative errno. */
export function systemError(errno: number, syscall: string, path?: string, dest?: string): SystemError {
  const [code, description] = describe(errno);
  let message = `${code}: ${description}, ${syscall}`;
  if (path !== undefined) message += ` '${path}'`;
  if (dest !== undefined) message += ` -> '${dest}'`;
  const err = new Error(message) as SystemError;
  err.errno = -Math.abs(errno);
  err.code = code;
  err.syscall = syscall;
  if (path !== undefined) err.path = path;
  if (dest !== undefined) err.dest = dest;
  Error.captureStackTrace?.(err, systemError);
  return err;
}

/**
 * The one converter from the native error record to the error the caller sees, handed to the
 * addon at load (lib/native/binding.ts): the addon calls it itself, so what crosses back is
 * already final.
 * A system call failure (errno, no code) becomes a Node-shaped system error, with the kernel's
 * fs-context messages appended when the new mount API had any; one of our codes becomes a
 * StorageError naming the refused value, with the errno behind it (negative, as in Node) and the
 * syscall when there was one. `detail` is our own explanation when errno alone misleads (which
 * flag the kernel refused to clear), appended to the message.
 */
export function nativeError(
  errno: number | undefined,
  syscall: string | undefined,
  path?: string,
  dest?: string,
  kernelMessages?: string[],
  code?: string,
  value?: string,
  reason?: string,
  detail?: string,
): Error {
  if (code === undefined) {
    const err = systemError(errno ?? 0, syscall ?? '', path, dest);
    if (kernelMessages !== undefined && kernelMessages.length > 0) {
      (err as SystemError & { kernelMessages: string[] }).kernelMessages = kernelMessages;
      err.message += ` (${kernelMessages.join('; ')})`;
    }
    if (detail !== undefined && detail !== '') {
      (err as SystemError & { detail: string }).detail = detail;
      err.message += `: ${detail}`;
    }
    return err;
  }
  const v = value ?? '';
  const props: Record<string, unknown> = { value: v };
  if (errno !== undefined) {
    props.errno = -Math.abs(errno);
    props.syscall = syscall;
  }
  return new StorageError(code as StorageErrorCode, nativeCodeMessage(code, v, reason), props);
}

/**
 * The message of one of our codes from the native record. `reason` is the native side's own
 * account of the refusal (native/core/options.cc OptionErrorReason for option words), so the word
 * is never read again here. An option's reason is a clause that follows the word; the too-long
 * data is named by its size, not quoted (it can be a megabyte).
 */
function nativeCodeMessage(code: string, value: string, reason: string | undefined): string {
  switch (code) {
    case 'ERR_MOUNT_OPTIONS_TOO_LONG':
      return `mount data of ${Buffer.byteLength(value)} bytes ${reason ?? 'is too long for mount(2)'}`;
    case 'ERR_INVALID_MOUNT_OPTION':
      return `mount option ${describeValue(value)} ${reason ?? 'is not supported'}`;
    case 'ERR_NOT_BLOCK_DEVICE':
      return notBlockDeviceMessage(value);
    default:
      return reason !== undefined ? `${reason}: '${value}'` : `${code}: ${JSON.stringify(value)}`;
  }
}

/** ERR_NOT_BLOCK_DEVICE's message, whether JS (assertBlockDevice) or a job's node check found it. */
export function notBlockDeviceMessage(path: string): string {
  return `'${path}' is not a block device`;
}

// CAP_SYS_ADMIN is bit 21 of the capability sets (linux/capability.h).
const CAP_SYS_ADMIN = 21n;

/** True when this process has CAP_SYS_ADMIN in its effective set (/proc/self/status CapEff). */
export function hasSysAdmin(status = (): string => readFileSync('/proc/self/status', 'utf8')): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status());
    return m !== null && ((BigInt(`0x${m[1]}`) >> CAP_SYS_ADMIN) & 1n) === 1n;
  } catch {
    return true; // unknown: do not claim the caller lacks it
  }
}

/** The filesystem types this kernel knows now (/proc/filesystems), or undefined if unreadable. */
export function knownFilesystems(
  read = (): string => readFileSync('/proc/filesystems', 'utf8'),
): Set<string> | undefined {
  try {
    return new Set(
      read()
        .split('\n')
        .map((l) => l.split('\t').pop()!.trim())
        .filter((f) => f !== ''),
    );
  } catch {
    return undefined;
  }
}

function explain(err: Error, why: string, props: Record<string, unknown>): Error {
  err.message += `: ${why}`;
  Object.assign(err, props);
  return err;
}

/**
 * Adds to a failed mount(2)/umount2 (or new-API call) what errno alone hides: ENODEV from a
 * filesystem type this kernel does not know names the type (else a virtio-fs mount without
 * virtiofs reads like a wrong tag), and EPERM/EACCES without CAP_SYS_ADMIN says that mounting
 * needs root. The Node error shape (code, errno, syscall, path, dest) is kept; `fstype` is added.
 */
export function explainMountError(err: Error, fstype?: string): Error {
  const e = err as SystemError & { detail?: string };
  if (e.code === 'ENODEV' && fstype) {
    const known = knownFilesystems();
    if (known !== undefined && !known.has(fstype)) {
      return explain(
        err,
        `filesystem type '${fstype}' is not known to this kernel (not in /proc/filesystems): check fstype, or load its module`,
        {
          fstype,
        },
      );
    }
  }
  if ((e.code === 'EPERM' || e.code === 'EACCES') && e.detail === undefined && !hasSysAdmin()) {
    return explain(err, 'mounting needs root (CAP_SYS_ADMIN), which this process does not have', {});
  }
  return err;
}

/** Node's AbortError shape: name 'AbortError', code 'ABORT_ERR', the signal's reason as cause. */
export function abortError(signal?: AbortSignal): Error {
  const err = new Error('The operation was aborted', signal ? { cause: signal.reason } : undefined) as Error & {
    code: string;
  };
  err.name = 'AbortError';
  err.code = 'ABORT_ERR';
  return err;
}

/** Node-style argument errors for callers that pass the wrong type or an impossible value. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(
    `The "${name}" argument must be ${expected}. Received ${describeValue(actual)}`,
  ) as TypeError & { code: string };
  err.code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

export function invalidArgValue(name: string, value: unknown, reason: string): TypeError {
  const err = new TypeError(`The argument '${name}' ${reason}. Received ${describeValue(value)}`) as TypeError & {
    code: string;
    value: unknown;
  };
  err.code = 'ERR_INVALID_ARG_VALUE';
  err.value = value;
  return err;
}

/** A refused value as a message shows it: a string quoted and cut at 64 characters, else its kind. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `'${v.length > 64 ? `${v.slice(0, 64)}...` : v}'`.replace(/\0/g, '\\x00');
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object';
  return `type ${typeof v} (${String(v)})`;
}

/**
 * A target that failed without stopping the search (a SCSI host that refused its scan, a PCI bus
 * whose rescan was refused, one device's unreadable sysfs entry): the sysfs path, what went
 * wrong, and the system call and error code underneath when there was one.
 */
export interface TargetFailure {
  path: string;
  reason: string;
  code?: string;
  errno?: number;
  syscall?: string;
}
