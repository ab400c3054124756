// Errors shaped like Node's own: system-call failures carry code/errno/syscall/path/dest exactly as
// fs errors do; our own failures are StorageError with a stable `code` and the offending value.
import { readFileSync } from 'node:fs';
import { getSystemErrorMap } from 'node:util';

export type StorageErrorCode =
  | 'ERR_INVALID_STORAGE'
  | 'ERR_UNKNOWN_STORAGE_DRIVER'
  | 'ERR_INVALID_MOUNT_OPTION'
  | 'ERR_MOUNT_OPTIONS_TOO_LONG'
  | 'ERR_INVALID_PCI_PATH'
  | 'ERR_INVALID_CCW_DEVICE'
  | 'ERR_INVALID_SCSI_ADDRESS'
  | 'ERR_NOT_BLOCK_DEVICE'
  | 'ERR_STORAGE_NOT_FOUND'
  | 'ERR_STORAGE_DRIVER_EXISTS'
  | 'ERR_SANDBOX_DESTROYED'
  | 'ERR_SYSFS'
  | 'ERR_NATIVE_LOAD'
  | (string & {});

export class StorageError extends Error {
  readonly code: StorageErrorCode;
  /** The input that was refused, when there is one. */
  readonly value?: unknown;

  constructor(code: StorageErrorCode, message: string, props?: { value?: unknown; cause?: unknown } & Record<string, unknown>) {
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

/** A failed system call, the way Node reports one (`err.errno` is negative, as in Node). */
export interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
  dest?: string;
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

/** What the native layer hands back for a failure: a system call or one of our codes. */
export type NativeError =
  | { errno: number; syscall: string; path?: string; dest?: string; kernelMessages?: string[]; detail?: string }
  | { code: string; value: string };

export function fromNative(e: NativeError): Error {
  if ('errno' in e) {
    const err = systemError(e.errno, e.syscall, e.path, e.dest);
    if (e.kernelMessages && e.kernelMessages.length > 0) {
      (err as SystemError & { kernelMessages: string[] }).kernelMessages = e.kernelMessages;
      err.message += ` (${e.kernelMessages.join('; ')})`;
    }
    if (e.detail) {
      (err as SystemError & { detail: string }).detail = e.detail;
      err.message += `: ${e.detail}`;
    }
    return err;
  }
  return new StorageError(e.code, nativeCodeMessage(e.code, e.value), { value: e.value });
}

/** Why the native tokenizer refused a word (the same scan: a backslash escapes the next byte). */
function refusedShape(word: string): 'space' | 'quote' | 'escape' | undefined {
  if (/^\s|\s$/.test(word)) return 'space';
  let quoted = false;
  for (let i = 0; i < word.length; i++) {
    if (word[i] === '\\') {
      if (i + 1 === word.length) return 'escape';
      i++;
    } else if (word[i] === '"') {
      quoted = !quoted;
    }
  }
  return quoted ? 'quote' : undefined;
}

function nativeCodeMessage(code: string, value: string): string {
  switch (code) {
    case 'ERR_MOUNT_OPTIONS_TOO_LONG':
      return `mount data is ${Buffer.byteLength(value)} bytes; the kernel takes at most one page less its NUL`;
    case 'ERR_INVALID_MOUNT_OPTION':
      switch (refusedShape(value)) {
        case 'space':
          return `mount option '${value}' starts or ends with whitespace; option words are separated by commas only, remove the spaces`;
        case 'quote':
          return `mount option '${value}' has an unclosed double quote; quotes must come in pairs around a value holding commas`;
        case 'escape':
          return `mount option '${value}' ends with a backslash that escapes nothing; write \\\\ for a backslash`;
        default:
          break;
      }
      return `mount option '${value}' is not supported`;
    default:
      return `${code}: ${JSON.stringify(value)}`;
  }
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
export function knownFilesystems(read = (): string => readFileSync('/proc/filesystems', 'utf8')): Set<string> | undefined {
  try {
    return new Set(read().split('\n').map((l) => l.split('\t').pop()!.trim()).filter((f) => f !== ''));
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
      return explain(err, `filesystem type '${fstype}' is not known to this kernel (not in /proc/filesystems): check fstype, or load its module`, {
        fstype,
      });
    }
  }
  if ((e.code === 'EPERM' || e.code === 'EACCES') && e.detail === undefined && !hasSysAdmin()) {
    return explain(err, 'mounting needs root (CAP_SYS_ADMIN), which this process does not have', {});
  }
  return err;
}

/** Node's AbortError shape: name 'AbortError', code 'ABORT_ERR', the signal's reason as cause. */
export function abortError(signal?: AbortSignal): Error {
  const err = new Error('The operation was aborted', signal ? { cause: signal.reason } : undefined) as Error & { code: string };
  err.name = 'AbortError';
  err.code = 'ABORT_ERR';
  return err;
}

/** Node-style argument errors for callers that pass the wrong type or an impossible value. */
export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const err = new TypeError(`The "${name}" argument must be ${expected}. Received ${describeValue(actual)}`) as TypeError & { code: string };
  err.code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

export function invalidArgValue(name: string, value: unknown, reason: string): TypeError {
  const err = new TypeError(`The argument '${name}' ${reason}. Received ${describeValue(value)}`) as TypeError & { code: string; value: unknown };
  err.code = 'ERR_INVALID_ARG_VALUE';
  err.value = value;
  return err;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `'${v.length > 64 ? `${v.slice(0, 64)}...` : v}'`.replace(/\0/g, '\\x00');
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object';
  return `type ${typeof v} (${String(v)})`;
}
