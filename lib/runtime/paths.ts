// Path spelling shared by every planning step (its own file so that settings and spec parsing,
// which classify builds on, do not import classify back).
import { posix } from 'node:path';

/** Go's filepath.Clean for absolute paths: normalized, no trailing "/" (except the root). */
export function cleanPath(p: string): string {
  const n = posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}
