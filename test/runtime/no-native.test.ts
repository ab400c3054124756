// kata-storage/runtime runs on the host, where the addon may not be: loading it loads no native
// code and no module that would.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

t.test('kata-storage/runtime loads no native code', async (t) => {
  const r = spawnSync(
    process.execPath,
    [
      ...process.execArgv,
      '-e',
      `require(${JSON.stringify(join(__dirname, '..', '..', 'lib', 'runtime', 'index.ts'))}); console.log(JSON.stringify(Object.keys(require.cache)))`,
    ],
    { encoding: 'utf8', timeout: 100000, env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' } },
  );
  t.equal(r.status, 0, r.stderr);
  const loaded = JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
  t.ok(
    loaded.some((f) => f.endsWith(join('runtime', 'container.ts'))),
    'the planner was loaded',
  );
  t.same(
    loaded.filter((f) => f.endsWith('.node') || /lib[\\/](native|mount|storage|sandbox)\.ts$/.test(f)),
    [],
    'no addon, no module that loads it',
  );
});
