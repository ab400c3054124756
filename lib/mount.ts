// mount/umount from Node. Each call is one native call that parses, mounts, applies propagation
// and the bind remount; the async forms run on the addon's own threads, never libuv's pool.
import { abortError, fromNative, invalidArgType, invalidArgValue, type NativeError } from './errors';
import { native } from './native';
import { joinOptions } from './options';

export interface MountCallOptions {
  /** Rejects with ABORT_ERR at once; a mount that still completes afterwards is undone. */
  signal?: AbortSignal;
}

export interface UmountOptions {
  /** MNT_DETACH: lazy unmount. Opt-in only; never done on the caller's behalf. */
  detach?: boolean;
  /** MNT_FORCE. */
  force?: boolean;
  /** MNT_EXPIRE. */
  expire?: boolean;
  /** Retry EBUSY with back-off (1 ms doubling to 100 ms) until this many ms have passed. */
  busyTimeoutMs?: number;
}

export function checkPath(value: unknown, name: string, allowEmpty = false): string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
  if (value.includes('\0')) throw invalidArgValue(name, value, 'must be a string without null bytes');
  if (!allowEmpty && value.length === 0) throw invalidArgValue(name, value, 'must not be empty');
  return value;
}

function mountArgs(source: unknown, target: unknown, fstype: unknown, options: readonly string[] | undefined): [string, string, string, string] {
  return [checkPath(source, 'source'), checkPath(target, 'target'), checkPath(fstype, 'fstype', true), joinOptions(options)];
}

// Undo work for mounts that completed after their caller aborted; tests and teardown can wait on it.
const undoing = new Set<Promise<void>>();

/** Resolves once every mount that finished after an abort has been undone (internal). */
export async function abortedMountsSettled(): Promise<void> {
  while (undoing.size > 0) await Promise.all([...undoing]);
}

function check(result: NativeError | undefined): void {
  if (result !== undefined) throw fromNative(result);
}

export function mountSync(source: string, target: string, fstype: string, options?: readonly string[]): void {
  const args = mountArgs(source, target, fstype, options);
  check(native.mountSync(...args));
}

export function mount(
  source: string,
  target: string,
  fstype: string,
  options?: readonly string[],
  opts: MountCallOptions = {},
): Promise<void> {
  let args: [string, string, string, string];
  try {
    args = mountArgs(source, target, fstype, options);
  } catch (err) {
    return Promise.reject(err);
  }
  const signal = opts.signal;
  if (signal?.aborted) return Promise.reject(abortError(signal));
  const pending = native.mount(...args);
  if (!signal) return pending.then(check);
  return new Promise<void>((resolve, reject) => {
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      reject(abortError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const settled = pending.then(async (result) => {
      signal.removeEventListener('abort', onAbort);
      if (!aborted) {
        if (result === undefined) resolve();
        else reject(fromNative(result));
        return;
      }
      // The caller has moved on: do not leave behind a mount nobody will release.
      if (result === undefined) {
        const e = await native.umount(args[1], false, false, false, 0);
        if (e) process.emitWarning(`kata-storage: could not undo aborted mount: ${fromNative(e).message}`);
      }
    });
    undoing.add(settled);
    void settled.finally(() => undoing.delete(settled));
  });
}

function umountArgs(target: unknown, opts: UmountOptions | undefined): [string, boolean, boolean, boolean, number] {
  const t = checkPath(target, 'target');
  if (opts === undefined || opts === null) return [t, false, false, false, 0];
  if (typeof opts !== 'object') throw invalidArgType('options', 'of type object', opts);
  // Own properties only: a polluted Object.prototype must not turn on MNT_DETACH or MNT_FORCE.
  const own = (k: keyof UmountOptions): unknown => (Object.hasOwn(opts, k) ? opts[k] : undefined);
  const busy = own('busyTimeoutMs') ?? 0;
  if (typeof busy !== 'number' || !Number.isInteger(busy) || busy < 0 || busy > 0x7fffffff) {
    throw invalidArgValue('options.busyTimeoutMs', busy, 'must be a non-negative integer number of milliseconds');
  }
  return [t, own('detach') === true, own('force') === true, own('expire') === true, busy];
}

export function umountSync(target: string, opts?: UmountOptions): void {
  check(native.umountSync(...umountArgs(target, opts)));
}

export function umount(target: string, opts?: UmountOptions): Promise<void> {
  let args: [string, boolean, boolean, boolean, number];
  try {
    args = umountArgs(target, opts);
  } catch (err) {
    return Promise.reject(err);
  }
  return native.umount(...args).then(check);
}

/** True when `path` is the root of a mount (bind mounts included); false when it does not exist. */
export function isMountPoint(path: string): boolean {
  const r = native.isMountPoint(checkPath(path, 'path'));
  if (typeof r === 'boolean') return r;
  throw fromNative(r);
}
