// Kata's handleHugepages: a `local` mount whose host source is a hugetlbfs (a HugePages emptyDir)
// becomes a hugetlbfs the agent makes under the guest's ephemeral dir, sized by the container's
// hugepage limit for that page size, and the OCI mount a bind of it.
import { posix } from 'node:path';
import type { Storage } from '../storage';
import { optionValues } from '../option-words';
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

export function planHugepages(mounts: WorkingMount[], spec: OciSpec, s: ResolvedSettings): Storage[] {
  const limits = new Map<number, number>();
  (spec.linux?.resources?.hugepageLimits ?? []).forEach((l, i) => {
    if (l.limit === 0) return;
    const size = ramBytes(l.pageSize);
    if (size === undefined)
      throw planError(
        'ERR_INVALID_SPEC',
        at(at('linux.resources.hugepageLimits', i), 'pageSize'),
        l.pageSize,
        'is not a page size such as 2MB or 1GB',
      );
    limits.set(size, l.limit);
  });
  const storages: Storage[] = [];
  for (const m of mounts) {
    if (m.removed || m.type !== 'local') continue;
    const host = s.volumes.get(cleanPath(m.source));
    if (host?.fstype !== 'hugetlbfs') continue;
    const pageText = optionValues(host.options).get('pagesize');
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
    const limit = limits.get(pageSize);
    // Kata would send `size=` empty here and the guest mount would fail; say why now instead.
    if (limit === undefined) {
      throw planError(
        'ERR_INVALID_SPEC',
        'linux.resources.hugepageLimits',
        spec.linux?.resources?.hugepageLimits,
        `has no limit for ${pageText} pages, which ${mountPath(m)} uses`,
      );
    }
    const mountPoint = posix.join(s.guestEphemeralDir, posix.basename(cleanPath(m.source)));
    storages.push({
      driver: 'ephemeral',
      source: 'nodev',
      fstype: 'hugetlbfs',
      options: [`pagesize=${pageSize},size=${limit}`],
      mountPoint,
    });
    m.source = mountPoint;
    m.type = 'bind';
  }
  return storages;
}
