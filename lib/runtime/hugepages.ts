// Kata's handleHugepages: a `local` mount whose host source is a hugetlbfs (a HugePages emptyDir)
// becomes a hugetlbfs the agent makes under the guest's ephemeral dir, sized by the container's
// hugepage limit for that page size, and the OCI mount a bind of it.
import { posix } from 'node:path';
import type { Storage } from '../storage';
import { DRIVER_EPHEMERAL_TYPE } from '../drivers';
import { optionValueMap } from '../option-words';
import { at, planError } from './errors';
import type { ResolvedSettings } from './settings';
import type { OciSpec } from './spec';
import { mountPath, type WorkingMount } from './working';
import { cleanPath } from './paths';

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * Bytes from `2MB`, `2M`, `2Mi`, `1GB`, `512k`... with binary multipliers, as Kata reads both the
 * runtime-spec hugepage size and hugetlbfs's `pagesize=` (go-units RAMInBytes). undefined if not a size.
 */
export function ramBytes(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:ib|i|b)?$/i.exec(text.trim());
  if (m === null) return undefined;
  const n = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

const LIMITS = 'linux.resources.hugepageLimits';
/** The largest uint64: the runtime-spec's type of a hugepage limit, and Kata's (u64 / uint64). */
const U64_MAX = 2n ** 64n - 1n;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A hugepage limit in bytes, as the decimal text the hugetlbfs `size=` takes. A safe integer, a
 * bigint or a decimal string is exact. A number past 2^53 has already lost its low digits to
 * JSON.parse; it is read as "at least that" (its nearest uint64): at 8 PiB and up, no guest has
 * that much memory, so any value there caps nothing and the difference cannot be seen.
 */
function limitBytes(v: unknown, path: string): string {
  let n: bigint | undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) n = BigInt(v);
  else if (typeof v === 'bigint' && v >= 0n) n = v;
  else if (typeof v === 'string' && /^\d{1,20}$/.test(v)) n = BigInt(v);
  if (n === undefined || (n > U64_MAX && typeof v !== 'number')) {
    throw planError('ERR_INVALID_SPEC', path, v, 'must be a byte count (a uint64: number, bigint or decimal string)');
  }
  return String(n > U64_MAX ? U64_MAX : n);
}

/**
 * The limit for pages of `pageSize` bytes, as Kata's handleHugepages takes it: the last entry of
 * that page size whose limit is not 0. undefined when there is none.
 */
function limitFor(spec: OciSpec, pageSize: number): string | undefined {
  const resources = isRecord(spec.linux) ? spec.linux.resources : undefined;
  const limits: unknown = isRecord(resources) ? resources.hugepageLimits : undefined;
  if (limits === undefined) return undefined;
  if (!Array.isArray(limits)) throw planError('ERR_INVALID_SPEC', LIMITS, limits, 'must be an array');
  let found: string | undefined;
  for (let i = 0; i < limits.length; i++) {
    const l: unknown = limits[i];
    const path = at(LIMITS, i);
    if (!isRecord(l) || typeof l.pageSize !== 'string')
      throw planError(
        'ERR_INVALID_SPEC',
        at(path, 'pageSize'),
        isRecord(l) ? l.pageSize : l,
        'must be a string such as 2MB',
      );
    const size = ramBytes(l.pageSize);
    if (size === undefined)
      throw planError('ERR_INVALID_SPEC', at(path, 'pageSize'), l.pageSize, 'is not a page size such as 2MB or 1GB');
    if (size !== pageSize) continue;
    const bytes = limitBytes(l.limit, at(path, 'limit'));
    if (bytes !== '0') found = bytes;
  }
  return found;
}

/**
 * Kata's handleHugepages. `linux.resources.hugepageLimits` is read only when a mount is a
 * hugetlbfs volume, and only as far as its page size needs: a spec whose limits no volume uses
 * plans whatever they hold (the runtime-spec's own example has a limit past 2^53).
 */
export function planHugepages(mounts: WorkingMount[], spec: OciSpec, s: ResolvedSettings): Storage[] {
  const storages: Storage[] = [];
  for (const m of mounts) {
    if (m.removed || m.type !== 'local') continue;
    const host = s.volumes.get(cleanPath(m.source));
    if (host?.fstype !== 'hugetlbfs') continue;
    const pageText = optionValueMap(host.options).get('pagesize');
    const volumePath = at('volumes', cleanPath(m.source));
    if (pageText === undefined)
      throw planError(
        'ERR_INVALID_RUNTIME_SETTINGS',
        at(volumePath, 'options'),
        host.options,
        'a hugetlbfs volume needs its pagesize= option',
      );
    const pageSize = ramBytes(pageText);
    if (pageSize === undefined)
      throw planError('ERR_INVALID_RUNTIME_SETTINGS', at(volumePath, 'options'), pageText, 'pagesize= is not a size');
    const limit = limitFor(spec, pageSize);
    // Kata would send `size=` empty here and the guest mount would fail; say why now instead.
    if (limit === undefined) {
      throw planError(
        'ERR_INVALID_SPEC',
        LIMITS,
        spec.linux?.resources?.hugepageLimits,
        `has no limit for ${pageText} pages, which ${mountPath(m)} uses`,
      );
    }
    // Whole pages, as the agent reserves them (Kata's agent divides size by pagesize, so a partial
    // page was never there): a size the agent refuses is never planned.
    const size = (BigInt(limit) / BigInt(pageSize)) * BigInt(pageSize);
    if (size === 0n) {
      throw planError(
        'ERR_INVALID_SPEC',
        LIMITS,
        limit,
        `is less than one ${pageText} page, which ${mountPath(m)} needs`,
      );
    }
    const mountPoint = posix.join(s.guestEphemeralDir, posix.basename(cleanPath(m.source)));
    storages.push({
      driver: DRIVER_EPHEMERAL_TYPE,
      source: 'nodev',
      fstype: 'hugetlbfs',
      options: [`pagesize=${pageSize},size=${size}`],
      mountPoint,
    });
    m.source = mountPoint;
    m.type = 'bind';
  }
  return storages;
}
