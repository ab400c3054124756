// The runtime planner's refusals: a StorageError with a stable code and `path`, the place in the
// input (the OCI spec or the settings) that is wrong, in JavaScript accessor form
// (`mounts[3].source`, `blockDevices["/dev/sdb"].pciPath`).
import { StorageError } from '../errors';

export type PlanErrorCode =
  /** The OCI spec is malformed or asks for something the guest cannot do. */
  | 'ERR_INVALID_SPEC'
  /** The sandbox settings are malformed (unknown sharedFs, block driver, ...). */
  | 'ERR_INVALID_RUNTIME_SETTINGS'
  /** A mount is a block volume but the runtime attached no device for its source. */
  | 'ERR_BLOCK_DEVICE_NOT_ATTACHED';

export interface PlanError extends StorageError {
  readonly code: PlanErrorCode;
  /** Where in the input the offending value is, e.g. `mounts[3].destination`. */
  readonly path: string;
  readonly value: unknown;
}

export function planError(code: PlanErrorCode, path: string, value: unknown, message: string): PlanError {
  return new StorageError(code, `${path}: ${message}`, { value, path }) as PlanError;
}

/** `a.b`, `a[3]` or `a["key"]`: how a path into the input is written in errors. */
export function at(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? (base === '' ? key : `${base}.${key}`) : `${base}[${JSON.stringify(key)}]`;
}
