// mount/umount from Node. Each call is one native call that parses, mounts, applies propagation
// and the bind remount; the async forms run on the addon's own threads, never libuv's pool.
import { isAbsolute, normalize } from 'node:path';
import { abortError, explainMountError, invalidArgType, invalidArgValue } from './errors';
import { traceSync, tracePromise, type MountTrace, type RemountTrace, type UmountTrace } from './events';
import { native, releaseStorageJobs, type NewMountApiSupport } from './native';

export type { NewMountApiSupport };
import { joinOptions } from './options';

/**
 * Which kernel interface mounts: `'new'` is fsopen/fsconfig/fsmount/move_mount (binds through
 * open_tree, attributes through mount_setattr), `'legacy'` is mount(2), `'auto'` the new API when
 * every call of it is allowed (kernel >= 5.12, no seccomp refusal), else mount(2).
 */
export type MountApi = 'auto' | 'new' | 'legacy';

export interface MountSyncOptions {
  /** Default: the environment variable KATA_STORAGE_MOUNT_API when set, else `'auto'`. */
  mountApi?: MountApi;
  /**
   * A directory the target must stay inside. The target (absolute and below it, or relative to
   * it) is opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) (before Linux 5.6, one
   * O_NOFOLLOW component at a time, `..` refused) and the mount lands on that file descriptor, so a path component swapped for a symlink (or `..`) after the caller
   * validated the path cannot redirect the mount: it fails with ELOOP or EXDEV instead.
   */
  beneath?: string;
}

export interface MountCallOptions extends MountSyncOptions {
  /** Rejects with ABORT_ERR at once; a mount that still completes afterwards is undone. */
  signal?: AbortSignal;
}

const MOUNT_APIS: Readonly<Record<MountApi, number>> = { auto: 0, new: 1, legacy: 2 };

/** Reads the process-wide default (KATA_STORAGE_MOUNT_API); exported for tests. */
export function defaultMountApi(env: NodeJS.ProcessEnv = process.env): MountApi | TypeError {
  const v = env.KATA_STORAGE_MOUNT_API;
  if (v === undefined || v === '') return 'auto';
  if (Object.hasOwn(MOUNT_APIS, v)) return v as MountApi;
  return invalidArgValue('KATA_STORAGE_MOUNT_API', v, "must be 'auto', 'new' or 'legacy'");
}

// Read once: the setting is for a whole process (a test run, an agent's configuration).
const envMountApi = defaultMountApi();

/** The addon's number for a mountApi setting (the process default when undefined); throws on a bad one. */
export function mountApiOf(api: unknown): number {
  if (api === undefined) {
    if (envMountApi instanceof TypeError) throw envMountApi;
    return MOUNT_APIS[envMountApi];
  }
  if (typeof api !== 'string' || !Object.hasOwn(MOUNT_APIS, api)) {
    throw invalidArgValue('options.mountApi', api, "must be 'auto', 'new' or 'legacy'");
  }
  return MOUNT_APIS[api as MountApi];
}

/** Which new-API system calls this process may make (probed once, with arguments that do nothing). */
export function newMountApiSupport(): NewMountApiSupport {
  return native.newMountApiSupport();
}

/**
 * The API a mount with this setting and these options uses: 'auto' resolved, and remounts (and,
 * under 'auto', data values longer than the 255 bytes fsconfig takes) going to mount(2).
 */
export function effectiveMountApi(api?: MountApi, options?: readonly string[]): 'new' | 'legacy' {
  const r = native.effectiveMountApi(mountApiOf(api), joinOptions(options));
  if (typeof r === 'string') return r;
  throw r;
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

type MountArgs = [source: string, target: string, fstype: string, list: string, api: number, beneath: string];

function beneathOf(target: string, beneath: unknown): string {
  if (beneath === undefined) return '';
  const root = checkPath(beneath, 'options.beneath');
  if (!isAbsolute(root)) throw invalidArgValue('options.beneath', root, 'must be an absolute path');
  // The root is the caller's trusted anchor and may be tidied; the target is left exactly as
  // given so that any `..` in it meets RESOLVE_BENEATH in the kernel.
  const r = normalize(root).replace(/(.)\/+$/, '$1');
  if (isAbsolute(target) && target !== r && !target.startsWith(r === '/' ? '/' : `${r}/`)) {
    throw invalidArgValue('target', target, `must be inside options.beneath ('${r}')`);
  }
  return r;
}

function mountArgs(
  source: unknown,
  target: unknown,
  fstype: unknown,
  options: readonly string[] | undefined,
  opts: MountSyncOptions | undefined,
): MountArgs {
  const s = checkPath(source, 'source');
  const t = checkPath(target, 'target');
  const f = checkPath(fstype, 'fstype', true);
  const list = joinOptions(options);
  if (opts === undefined || opts === null) return [s, t, f, list, mountApiOf(undefined), ''];
  if (typeof opts !== 'object') throw invalidArgType('options', 'of type object', opts);
  // Own properties only, as for umount: a polluted Object.prototype must not pick the API or root.
  const own = (k: keyof MountSyncOptions): unknown => (Object.hasOwn(opts, k) ? opts[k] : undefined);
  return [s, t, f, list, mountApiOf(own('mountApi')), beneathOf(t, own('beneath'))];
}

// Undo work for mounts that completed after their caller aborted; tests and teardown can wait on it.
const undoing = new Set<Promise<void>>();

/** Resolves once every mount that finished after an abort has been undone (internal). */
export async function abortedMountsSettled(): Promise<void> {
  while (undoing.size > 0) await Promise.all([...undoing]);
}

function check(result: Error | undefined, fstype?: string): void {
  if (result !== undefined) throw explainMountError(result, fstype);
}

const API_NAMES = ['auto', 'new', 'legacy'] as const;

function mountTrace(args: MountArgs, options: readonly string[] | undefined): MountTrace {
  const t: MountTrace = {
    source: args[0],
    target: args[1],
    fstype: args[2],
    options: options ?? [],
    mountApi: API_NAMES[args[4]],
  };
  if (args[5] !== '') t.beneath = args[5];
  return t;
}

export function mountSync(
  source: string,
  target: string,
  fstype: string,
  options?: readonly string[],
  opts?: MountSyncOptions,
): void {
  const args = mountArgs(source, target, fstype, options, opts);
  traceSync(
    'mount',
    () => mountTrace(args, options),
    () => check(native.mountSync(...args), args[2]),
  );
}

export function mount(
  source: string,
  target: string,
  fstype: string,
  options?: readonly string[],
  opts?: MountCallOptions,
): Promise<void> {
  return mountTraced(source, target, fstype, options, opts, false).then(() => undefined);
}

/**
 * mount(), resolving with the new mount's ID (statx `STATX_MNT_ID_UNIQUE`, or `STATX_MNT_ID`, or
 * mountinfo's; 0 when none could be read), which a Sandbox records to release exactly that
 * mount (native/core/release.h). Internal.
 */
export function mountRecorded(
  source: string,
  target: string,
  fstype: string,
  options: readonly string[] | undefined,
  opts: MountCallOptions | undefined,
): Promise<number> {
  return mountTraced(source, target, fstype, options, opts, true);
}

function mountTraced(
  source: string,
  target: string,
  fstype: string,
  options: readonly string[] | undefined,
  opts: MountCallOptions | undefined,
  recordId: boolean,
): Promise<number> {
  let args: MountArgs;
  try {
    args = mountArgs(source, target, fstype, options, opts);
  } catch (err) {
    return Promise.reject(err);
  }
  const signal = opts?.signal;
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return tracePromise(
    'mount',
    () => mountTrace(args, options),
    () => mountNow(args, signal, recordId),
  );
}

/** The mount's ID when it succeeded (0 without `recordId`), or its error. */
function idOf(result: Error | number | undefined, fstype: string): number {
  if (typeof result === 'number') return result;
  check(result, fstype);
  return 0;
}

function mountNow(args: MountArgs, signal: AbortSignal | undefined, recordId: boolean): Promise<number> {
  const pending = recordId ? native.mount(...args, true) : native.mount(...args);
  if (!signal) return pending.then((r) => idOf(r, args[2]));
  return new Promise<number>((resolve, reject) => {
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      reject(abortError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const settled = pending.then(async (result) => {
      signal.removeEventListener('abort', onAbort);
      if (!aborted) {
        if (result === undefined || typeof result === 'number') resolve(result ?? 0);
        else reject(explainMountError(result, args[2]));
        return;
      }
      // The caller has moved on: do not leave behind a mount nobody will release (by its ID when
      // it was recorded: only that mount, whatever came to sit on it).
      if (result === undefined || typeof result === 'number') {
        const e =
          typeof result === 'number' && result !== 0
            ? (await releaseStorageJobs([{ mounts: [{ path: args[1], id: result }], created: [] }], 0))[0]!.error
            : await native.umount(args[1], false, false, false, 0);
        if (e) process.emitWarning(`kata-storage: could not undo aborted mount: ${e.message}`);
      }
    });
    undoing.add(settled);
    void settled.finally(() => undoing.delete(settled));
  });
}

function umountArgs(target: unknown, opts: UmountOptions | undefined): UmountArgs {
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

type UmountArgs = [string, boolean, boolean, boolean, number];

const umountTrace = (a: UmountArgs): UmountTrace => ({ target: a[0], detach: a[1], force: a[2], busyTimeoutMs: a[4] });

export function umountSync(target: string, opts?: UmountOptions): void {
  const args = umountArgs(target, opts);
  traceSync(
    'umount',
    () => umountTrace(args),
    () => check(native.umountSync(...args)),
  );
}

export function umount(target: string, opts?: UmountOptions): Promise<void> {
  let args: UmountArgs;
  try {
    args = umountArgs(target, opts);
  } catch (err) {
    return Promise.reject(err);
  }
  return tracePromise(
    'umount',
    () => umountTrace(args),
    () => native.umount(...args).then((r) => check(r)),
  );
}

/**
 * Remounts the mount at `target` with new superblock options (e.g. `['size=64m']` for a tmpfs).
 * The new API: `fspick(FSPICK_SYMLINK_NOFOLLOW | FSPICK_NO_AUTOMOUNT)`, `fsconfig` per word,
 * `fsconfig(FSCONFIG_CMD_RECONFIGURE)`; per-mount flags are left as they are. `mount(2)`:
 * `MS_REMOUNT` plus the mount's current nosuid/nodev/noexec/atime flags (read with statvfs, so a
 * remount does not clear them). `'auto'` takes the new API when the kernel has `fspick`.
 * Resolves with the API used; rejects with the system error (`syscall` `fspick`, `fsconfig`,
 * `statvfs` or `mount`, the filesystem's complaint in `kernelMessages`) or
 * `ERR_INVALID_MOUNT_OPTION`. Traced on `tracing:kata-storage:remount:*` (RemountTrace).
 */
export function remount(
  target: string,
  options: readonly string[] = [],
  opts: MountSyncOptions = {},
): Promise<'new' | 'legacy'> {
  let args: [string, string, number];
  try {
    args = [
      checkPath(target, 'target'),
      joinOptions(options),
      mountApiOf(Object.hasOwn(opts, 'mountApi') ? opts.mountApi : undefined),
    ];
  } catch (err) {
    return Promise.reject(err);
  }
  return tracePromise(
    'remount',
    (): RemountTrace => ({ target: args[0], options, mountApi: API_NAMES[args[2]] }),
    () =>
      native.remount(...args).then((r) => {
        if (typeof r === 'string') return r;
        throw r;
      }),
  );
}

/** True when `path` is the root of a mount (bind mounts included); false when it does not exist. */
export function isMountPoint(path: string): boolean {
  const r = native.isMountPoint(checkPath(path, 'path'));
  if (typeof r === 'boolean') return r;
  throw r;
}
