// The planner's working copy of one OCI mount: each step of Kata's createContainer rewrites its
// type, source and options in place, as Kata rewrites ociSpec.Mounts.
import type { CheckedMount } from './spec';

export interface WorkingMount {
  /** Index in the input spec's `mounts`, for error paths and host actions. */
  readonly index: number;
  readonly destination: string;
  /** The host path the spec named (the source before any rewrite). */
  readonly hostSource: string;
  type: string;
  source: string;
  options: string[];
  /** removeIgnoredOCIMount drops it from the rewritten spec. */
  removed: boolean;
  /**
   * A Kubernetes subPath view of an emptyDir the guest makes: `source` is then the emptyDir's host
   * path, and the mount becomes `<its guest storage>/<subPath>`.
   */
  subPath?: string;
}

export function working(m: CheckedMount): WorkingMount {
  return {
    index: m.index,
    destination: m.destination,
    hostSource: m.source,
    type: m.type,
    source: m.source,
    options: [...m.options],
    removed: false,
  };
}

/** `mounts[3]`: where a mount is in the input spec. */
export function mountPath(m: { index: number }, field?: string): string {
  return field === undefined ? `mounts[${m.index}]` : `mounts[${m.index}].${field}`;
}
