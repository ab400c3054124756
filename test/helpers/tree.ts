// The directory tree under a root as sorted text, to prove a failed request left no directory.
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

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
