// The one reader of /proc/self/mountinfo in lib/ (proc(5)): each line's mount point, root-relative
// options, filesystem type, source and super options, with the kernel's octal escapes (\040 for a
// space, \011, \012, \134) undone in the paths.
import { readFileSync } from 'node:fs';

export interface MountinfoEntry {
  mountPoint: string;
  /** Per-mount options (`rw`/`ro`, `nosuid`, ...). */
  mountOptions: string[];
  fstype: string;
  source: string;
  /** Per-superblock options (`size=`, `mode=`, ...). */
  superOptions: string[];
}

const unescape = (s: string): string =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Every mount of this process's namespace, in mountinfo order (a later entry is mounted on top). */
export function readMountinfo(): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    out.push({
      mountPoint: unescape(left[4] ?? ''),
      mountOptions: (left[5] ?? '').split(','),
      fstype: right[0] ?? '',
      source: unescape(right[1] ?? ''),
      superOptions: (right[2] ?? '').split(','),
    });
  }
  return out;
}
