// Tests that run what a consumer runs (dist/cli.js, the published .d.ts) need dist/ to be the
// compiled form of lib/ as it is now: rebuild it when a source is newer.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const packageRoot = join(__dirname, '..', '..');

export function ensureBuilt(): void {
  const lib = join(packageRoot, 'lib');
  const newest = Math.max(...readdirSync(lib, { recursive: true }).map((f) => statSync(join(lib, String(f))).mtimeMs));
  const out = join(packageRoot, 'dist', 'index.d.ts');
  if (
    existsSync(out) &&
    statSync(out).mtimeMs >= newest &&
    statSync(join(packageRoot, 'dist', 'cli.js')).mtimeMs >= newest
  )
    return;
  const r = spawnSync(
    process.execPath,
    [join(packageRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(packageRoot, 'tsconfig.json')],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`tsc failed:\n${r.stdout}${r.stderr}`);
}
