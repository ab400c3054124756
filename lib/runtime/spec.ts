// The parts of an OCI runtime spec (config.json, opencontainers/runtime-spec config.md) the
// planner reads, and the one check of them: every mount is validated here, before anything is
// planned, so a bad spec yields one error with a path into it and no partial plan.
import { cleanPath } from './paths';
import { at, planError } from './errors';

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
  [extra: string]: unknown;
}

export interface OciHugepageLimit {
  /** `2MB`, `1GB`, ... (runtime-spec: the hugepage size). */
  pageSize: string;
  /**
   * Bytes, a uint64 (runtime-spec). A JSON number holds it exactly below 2^53; a larger number
   * has lost its low digits in parsing and is read as "at least that" (see planContainer). A
   * bigint (a parser that keeps uint64s) or a decimal string (proto3 JSON writes uint64 so) is exact.
   */
  limit: number | bigint | string;
}

export interface OciSpec {
  ociVersion?: string;
  root?: { path: string; readonly?: boolean };
  mounts?: OciMount[];
  linux?: { resources?: { hugepageLimits?: OciHugepageLimit[]; [k: string]: unknown }; [k: string]: unknown };
  annotations?: Record<string, string>;
  [extra: string]: unknown;
}

/**
 * Mount types a Linux guest can be asked for: runc's spec and kubelet/containerd mounts, Kata's
 * own `ephemeral` and `local`, and the disk and pseudo filesystems a container may name. A type
 * outside this list is refused rather than passed to the guest to fail there.
 */
export const KNOWN_MOUNT_TYPES: ReadonlySet<string> = new Set([
  'bind',
  'rbind',
  'none',
  'proc',
  'sysfs',
  'tmpfs',
  'devpts',
  'mqueue',
  'cgroup',
  'cgroup2',
  'hugetlbfs',
  'ephemeral',
  'local',
  'overlay',
  'securityfs',
  'debugfs',
  'tracefs',
  'configfs',
  'fusectl',
  'pstore',
  'bpf',
  'binfmt_misc',
  'ramfs',
  'ext2',
  'ext3',
  'ext4',
  'xfs',
  'btrfs',
  'vfat',
  'fat',
  'exfat',
  'iso9660',
  'squashfs',
  'erofs',
  'virtiofs',
  '9p',
  'nfs',
  'nfs4',
  'fuse',
]);

/** Kata's annotations.IsFileSystemLayer: a mount that is an image layer, not a volume. */
export const LAYER_OPTION = 'io.katacontainers.fs-opt.is-layer';
/** Kata's annotations.IsFileBlockDevice: the source is a file to attach as a block device. */
export const FILE_BLOCK_DEVICE_OPTION = 'io.katacontainers.fs-opt.block_device=file';

function invalid(path: string, value: unknown, why: string): Error {
  return planError('ERR_INVALID_SPEC', path, value, why);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A checked mount: `destination` cleaned (for comparisons and names; the rewritten spec keeps the
 * spec's own string), `type` what Kata's oci.newMount makes of it (`bind` when bind/rbind is an option).
 */
export interface CheckedMount {
  index: number;
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/**
 * Whether an OCI mount's options make it read-only: `ro`, or runc's `rro`, which CRI runtimes put
 * there instead of `ro` for a Kubernetes `recursiveReadOnly` volume (KEP-3857). A later `rw`
 * undoes `ro` but not `rro` (runc applies the recursive attributes after the plain flags).
 */
export function isReadOnlyMount(options: readonly string[]): boolean {
  let ro = false;
  let rro = false;
  for (const element of options) {
    for (const word of element.split(',')) {
      if (word === 'ro') ro = true;
      else if (word === 'rw') ro = false;
      else if (word === 'rro') rro = true;
    }
  }
  return ro || rro;
}

function checkMount(m: unknown, i: number): CheckedMount {
  const path = at('mounts', i);
  if (!isRecord(m)) throw invalid(path, m, 'must be an object');
  const dest = m.destination;
  if (dest === undefined || dest === null || dest === '')
    throw invalid(at(path, 'destination'), dest, 'is required (the path in the container)');
  if (typeof dest !== 'string') throw invalid(at(path, 'destination'), dest, 'must be a string');
  if (dest.includes('\0')) throw invalid(at(path, 'destination'), dest, 'must not contain NUL');
  // The runtime-spec lets a Linux destination be relative, to the container's '/' (runc
  // resolves it so): 'dev/shm' is '/dev/shm', and gets its handling.
  if (dest.split('/').includes('..')) throw invalid(at(path, 'destination'), dest, 'must not contain ".."');
  const source = m.source ?? '';
  if (typeof source !== 'string' || source.includes('\0'))
    throw invalid(at(path, 'source'), source, 'must be a string without NUL');
  const options = m.options ?? [];
  if (!Array.isArray(options) || options.some((o) => typeof o !== 'string' || o.includes('\0'))) {
    throw invalid(at(path, 'options'), options, 'must be an array of strings');
  }
  const t = m.type ?? '';
  if (typeof t !== 'string') throw invalid(at(path, 'type'), t, 'must be a string');
  const bind = options.includes('bind') || options.includes('rbind');
  let type = t;
  // Kata's oci.newMount (after runc's specconv): a bind/rbind option makes a bind mount, whatever
  // the type says, except for Kata's own ephemeral and local types.
  if (bind && type !== 'ephemeral' && type !== 'local') type = 'bind';
  if (type === '') throw invalid(at(path, 'type'), t, 'is required unless the options say bind or rbind');
  if (type === 'rbind') type = 'bind';
  if (!KNOWN_MOUNT_TYPES.has(type))
    throw invalid(
      at(path, 'type'),
      t,
      `is not a filesystem the guest mounts (${[...KNOWN_MOUNT_TYPES].slice(0, 8).join(', ')}, ...)`,
    );
  if ((type === 'bind' || type === 'ephemeral' || type === 'local') && !source.startsWith('/')) {
    throw invalid(at(path, 'source'), source, `must be an absolute host path for a ${type} mount`);
  }
  const absolute = dest.startsWith('/') ? dest : `/${dest}`;
  return { index: i, destination: cleanPath(absolute), type, source, options: [...(options as string[])] };
}

/**
 * Validates the spec's mounts and root, which every plan reads. Throws ERR_INVALID_SPEC with the
 * path of the first fault. Other fields are checked where a plan uses them (hugepageLimits only
 * for a hugetlbfs volume), so a field the plan does not need cannot refuse the spec.
 */
export function checkSpec(spec: unknown): { spec: OciSpec; mounts: CheckedMount[] } {
  if (!isRecord(spec)) throw invalid('spec', spec, 'must be an object (an OCI config.json)');
  const mounts = spec.mounts ?? [];
  if (!Array.isArray(mounts)) throw invalid('mounts', mounts, 'must be an array');
  const checked = mounts.map((m, i) => checkMount(m, i));
  const root = spec.root;
  if (root !== undefined) {
    if (!isRecord(root)) throw invalid('root', root, 'must be an object');
    if (typeof root.path !== 'string' || root.path === '' || root.path.includes('\0'))
      throw invalid('root.path', root.path, 'must be a non-empty path');
  }
  return { spec: spec as OciSpec, mounts: checked };
}
