// The directory tree under a root as sorted text, to prove a failed request left no directory; and
// the tree that tries to lead a path out of a root through a symlink.
import { lstatSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { basename, join } from 'node:path';

export function treeSnapshot(root: string): string {
  const out: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const st = lstatSync(join(dir, name));
      const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f';
      out.push(`${kind} ${rel}${name} ${(st.mode & 0o7777).toString(8)}`);
      if (st.isDirectory()) walk(join(dir, name), `${rel}${name}/`);
    }
  };
  walk(root, '');
  return out.join('\n');
}

/**
 * In `dir`: `root/<inside>`, a sibling `outside/<last part of inside>`, and `root/<link>`, a
 * symlink to `outside`, so `<link>/<last part>` names a directory outside the root.
 */
export function escapeTree(dir: string, inside: string, link: string): { root: string; outside: string } {
  const root = join(dir, 'root');
  const outside = join(dir, 'outside');
  mkdirSync(join(root, inside), { recursive: true });
  mkdirSync(join(outside, basename(inside)), { recursive: true });
  symlinkSync(outside, join(root, link));
  return { root, outside };
}
