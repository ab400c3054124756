// Everything that can be checked about a normalized Storage before the system is touched: where
// its mount point lies beneath the allowed roots (walked without following a symlink), and its
// mount options as the native tokenizer parses them.
import { posix } from 'node:path';
import { StorageError } from '../errors';
import { native } from '../native';
import { optionWords, parseMountOptions, type ParsedMountOptions } from '../options';
import { invalid, withoutTrailingSlash, type Storage } from './request';

/** Where a validated mount point lives: the allowed root and the path relative to it. */
export interface Placement {
  root: string;
  rel: string;
}

/**
 * A storage as Sandbox.addStorages validated it, once, before anything was touched: handlers
 * receive this and parse nothing again.
 */
export interface PreparedStorage extends Storage {
  /** `options` as the native tokenizer parsed them (flags, propagation, data). */
  readonly mountOptions: ParsedMountOptions;
  /** The one allowed root the mount point lies beneath, and the path below it. */
  readonly placement: Placement;
  /** What the handler's validate() returned: the driver's own options, parsed. */
  readonly driverData?: unknown;
}

export function checkAllowedRoots(roots: unknown): string[] {
  if (!Array.isArray(roots) || roots.length === 0) {
    throw new StorageError('ERR_INVALID_ARG_VALUE', 'allowedRoots must be a non-empty array of absolute paths', {
      value: roots,
    });
  }
  return roots.map((given: unknown) => {
    const r = typeof given === 'string' ? withoutTrailingSlash(given) : given;
    if (
      typeof r !== 'string' ||
      !r.startsWith('/') ||
      r.includes('\0') ||
      posix.normalize(r) !== r ||
      (r.length > 1 && r.endsWith('/'))
    ) {
      throw new StorageError(
        'ERR_INVALID_ARG_VALUE',
        `allowed root ${JSON.stringify(given)} must be an absolute, normalized path (no "..", "." or "//")`,
        { value: given },
      );
    }
    return r;
  });
}

// The kernel's limits (linux/limits.h): a path of PATH_MAX bytes with its NUL, a name of NAME_MAX.
const PATH_MAX = 4096;
const NAME_MAX = 255;

/**
 * The allowed root a path lies strictly beneath: the longest (innermost) of `roots` that is a
 * whole-component prefix of it, or undefined. The one rule for validation (placing the mount
 * point once into PreparedStorage.placement), directory creation and the mount's resolve-beneath root.
 */
export function allowedRootOf(path: string, roots: readonly string[]): string | undefined {
  let root: string | undefined;
  for (const r of roots) {
    const prefix = r === '/' ? '/' : `${r}/`;
    if (path.startsWith(prefix) && (root === undefined || r.length > root.length)) root = r;
  }
  return root;
}

/**
 * Checks a mount point is absolute, normalized, within the kernel's path limits, strictly beneath
 * an allowed root and reached without symlinks.
 */
export function placeMountPoint(mountPoint: string, roots: readonly string[], walk = true): Placement {
  if (mountPoint === '') throw invalid('mountPoint', mountPoint, 'must not be empty');
  if (mountPoint.includes('\0')) throw invalid('mountPoint', mountPoint, 'must not contain NUL bytes');
  if (!mountPoint.startsWith('/')) throw invalid('mountPoint', mountPoint, 'must be an absolute path');
  // The components after the leading '': an empty one is a '//' or a trailing '/', and '.' or
  // '..' is not normalized. Only one of more than NAME_MAX / 3 UTF-16 units can pass NAME_MAX
  // bytes (no unit takes more than 3 bytes in UTF-8), and likewise for the whole path.
  const components = mountPoint.split('/');
  let longComponent = false;
  for (let i = 1; i < components.length; i++) {
    const c = components[i]!;
    if (c === '' || c === '.' || c === '..') {
      throw invalid(
        'mountPoint',
        mountPoint,
        'must be normalized (no "..", "." or "//"; one trailing "/" is dropped, a second refused)',
      );
    }
    if (c.length > NAME_MAX / 3) longComponent = true;
  }
  const bytes = mountPoint.length * 3 < PATH_MAX ? mountPoint.length : Buffer.byteLength(mountPoint);
  if (bytes >= PATH_MAX)
    throw invalid(
      'mountPoint',
      mountPoint,
      `is ${bytes} bytes long; the kernel takes paths of at most ${PATH_MAX - 1} (PATH_MAX)`,
    );
  const long = longComponent ? components.find((c) => Buffer.byteLength(c) > NAME_MAX) : undefined;
  if (long !== undefined) {
    throw invalid(
      'mountPoint',
      mountPoint,
      `has a component of ${Buffer.byteLength(long)} bytes; the kernel takes names of at most ${NAME_MAX} (NAME_MAX)`,
    );
  }
  if (roots.includes(mountPoint)) {
    throw invalid(
      'mountPoint',
      mountPoint,
      'is an allowed root itself; storages are mounted strictly beneath a root, not on it',
    );
  }
  const root = allowedRootOf(mountPoint, roots);
  if (root === undefined) throw invalid('mountPoint', mountPoint, `is outside the allowed roots (${roots.join(', ')})`);
  const rel = mountPoint.slice(root === '/' ? 1 : root.length + 1);
  if (walk) checkPlacement(mountPoint, { root, rel });
  return { root, rel };
}

/**
 * Walks the mount point's path from its root as it stands now (openat with O_NOFOLLOW, nothing
 * created) and refuses a symlink or a non-directory on the way, before anything is touched.
 */
export function checkPlacement(mountPoint: string, { root, rel }: Placement): void {
  const r = native.checkBeneath(root, rel);
  if (r === undefined) return;
  if (r instanceof Error) throw r;
  throw beneathRefusal(mountPoint, r.stop, r.path);
}

/** The error for a mount point whose walk meets a symlink or a non-directory at `path`. */
export function beneathRefusal(mountPoint: string, stop: 'symlink' | 'notdir', path: string): StorageError {
  const why = stop === 'symlink' ? 'is reached through a symlink' : 'goes through a non-directory';
  return new StorageError('ERR_INVALID_STORAGE', `storage mountPoint ${mountPoint} ${why} at ${path}`, {
    value: mountPoint,
    field: 'mountPoint',
    path,
  });
}

/**
 * Validation common to every driver, parsing the options and placing the mount point once;
 * handlers add their own checks.
 */
export function validateStorage(
  s: Storage,
  roots: readonly string[],
  walk = true,
): { placement: Placement; mountOptions: ParsedMountOptions } {
  for (const field of ['driver', 'source', 'fstype'] as const) {
    const v = s[field];
    if (v === '') throw invalid(field, v, 'must not be empty');
    if (v.includes('\0')) throw invalid(field, v, 'must not contain NUL bytes');
  }
  for (const field of ['options', 'driverOptions'] as const) {
    for (const o of s[field] ?? []) if (o.includes('\0')) throw invalid(field, o, 'must not contain NUL bytes');
  }
  // `loop` and over-long data are refused now rather than after earlier storages were mounted.
  const mountOptions = parseMountOptions(s.options ?? []);
  return { placement: placeMountPoint(s.mountPoint, roots, walk), mountOptions };
}

/** Every `key=value` word of an option list (split by the mount tokenizer), last one wins. */
export function optionValues(options: readonly string[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const word of optionWords(options)) {
    const eq = word.indexOf('=');
    if (eq > 0) m.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return m;
}

/** The option list without the words for which `drop(word)` is true (one word per element). */
export function withoutOptions(options: readonly string[] | undefined, drop: (word: string) => boolean): string[] {
  return optionWords(options).filter((w) => !drop(w));
}
