// Mount option words -> flags, propagation and data. The parsing itself is native (one string
// crosses, flags come back through a shared array), this file only checks and shapes.
import { StorageError, invalidArgType } from './errors';
import { native } from './native';

export type MountFlagName =
  | 'RDONLY'
  | 'NOSUID'
  | 'NODEV'
  | 'NOEXEC'
  | 'SYNCHRONOUS'
  | 'REMOUNT'
  | 'MANDLOCK'
  | 'DIRSYNC'
  | 'NOSYMFOLLOW'
  | 'NOATIME'
  | 'NODIRATIME'
  | 'BIND'
  | 'MOVE'
  | 'REC'
  | 'SILENT'
  | 'POSIXACL'
  | 'UNBINDABLE'
  | 'PRIVATE'
  | 'SLAVE'
  | 'SHARED'
  | 'RELATIME'
  | 'I_VERSION'
  | 'STRICTATIME'
  | 'LAZYTIME';

/** The kernel's MS_* values, as compiled from <sys/mount.h>. */
export const MountFlags: Readonly<Record<MountFlagName, number>> = Object.freeze({ ...native.mountFlags }) as Readonly<
  Record<MountFlagName, number>
>;

export interface ParsedMountOptions {
  /** MS_* flags for the main mount(2). */
  flags: number;
  /** MS_SHARED/PRIVATE/SLAVE/UNBINDABLE (| MS_REC for the r-forms); 0 when none was asked for. */
  propagation: number;
  /** Filesystem-specific data, comma-joined in the original order. */
  data: string;
  /**
   * MS_RDONLY/NOSUID/NODEV/NOEXEC from runc's `rro`/`rnosuid`/`rnodev`/`rnoexec`: applied to the
   * mount and every mount below it with mount_setattr(AT_RECURSIVE). They are in `flags` too (the
   * mount itself has them, whatever word follows: `rro,rw` is read-only, as in runc), so a
   * new superblock or a plain bind, which have no mounts below, take them through either API.
   * mount(2) cannot reach the mounts below an `rbind`: with the legacy API `rbind` with one of
   * them is refused with ERR_INVALID_MOUNT_OPTION.
   */
  recursiveFlags: number;
}

/**
 * Option elements checked for the native parser: strings, none with a NUL byte (NUL separates
 * elements where they cross to native). Returns the same array.
 */
export function optionElements(options: readonly string[] | undefined, name = 'options'): readonly string[] {
  if (options === undefined) return [];
  if (!Array.isArray(options)) throw invalidArgType(name, 'an array of strings', options);
  for (let i = 0; i < options.length; i++) {
    const o: unknown = options[i];
    if (typeof o !== 'string') throw invalidArgType(`${name}[${i}]`, 'of type string', o);
    if (o.includes('\0')) {
      throw new StorageError('ERR_INVALID_MOUNT_OPTION', `mount option ${i} contains a NUL byte`, { value: o });
    }
  }
  return options;
}

/**
 * Joins option elements for the native parser, which splits each element on commas outside
 * double quotes. NUL separates elements, so it may not appear inside one.
 */
export function joinOptions(options: readonly string[] | undefined, name = 'options'): string {
  return optionElements(options, name).join('\0');
}

export function parseMountOptions(options: readonly string[]): ParsedMountOptions {
  if (!Array.isArray(options)) throw invalidArgType('options', 'an array of strings', options);
  const r = native.parseMountOptions(joinOptions(options));
  if (typeof r !== 'string') throw r;
  const scratch = native.scratch;
  return { flags: scratch[0]!, propagation: scratch[1]!, data: r, recursiveFlags: scratch[2]! };
}

/**
 * The words of an option list as every mount path reads them (the native tokenizer): elements
 * split on commas, except commas inside double quotes or escaped with a backslash (overlayfs'
 * `lowerdir=/a\,b`). Quotes and backslashes stay in the words; see `overlayPath`.
 */
export function optionWords(options: readonly string[] | undefined): string[] {
  return native.optionWords(joinOptions(options));
}

/**
 * The path overlayfs makes of an `upperdir=`/`workdir=` value (kernel ovl_unescape after the
 * option splitter): double quotes dropped, then each backslash taken as escaping the next byte
 * (`up\,per` is `up,per`, `c\:1` is `c:1`).
 */
export function overlayPath(value: string): string {
  return value.replace(/"/g, '').replace(/\\(.?)/gs, '$1');
}
