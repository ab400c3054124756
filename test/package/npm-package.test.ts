// What an npm user meets before any mount: the published types (compile-time tests, publint,
// arethetypeswrong), the pack guard, the tarball's contents, the install script's choices, the
// runtime dependencies and the completeness of the error-code union.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, packageRoot as root } from '../helpers/build';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { fileListProblems, ARCHES } = require('../../scripts/release-pack.js') as {
  fileListProblems(files: string[], read: (rel: string) => string): string[];
  ARCHES: string[];
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { fromSourceRequested } = require('../../scripts/install.js') as {
  fromSourceRequested(env: NodeJS.ProcessEnv): boolean;
};

ensureBuilt();
// npm pack, tsc and attw each take seconds, and far more on a loaded machine.
t.setTimeout(600000);

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const bin = (name: string): string => join(root, 'node_modules', '.bin', name);

function scratch(t: tap.Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'kata-package-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** npm as a consumer runs it: none of the npm_config_* our own `npm test` passes down. */
function npmEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

/** The tarball of this tree as it is (the prepack guard skipped: this checks the layout, not the prebuilds). */
function packHere(dir: string): { tarball: string; files: string[] } {
  const r = spawnSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], {
    cwd: root,
    encoding: 'utf8',
    env: npmEnv(),
  });
  if (r.status !== 0) throw new Error(`npm pack failed: ${r.stderr}`);
  const [info] = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as [{ filename: string; files: { path: string }[] }];
  return { tarball: join(dir, info.filename), files: info.files.map((f) => f.path) };
}

t.test('the published types: compile-time tests through the exports map', async (t) => {
  const r = spawnSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'test', 'types')],
    {
      encoding: 'utf8',
    },
  );
  t.equal(r.status, 0, `tsc -p test/types:\n${r.stdout}${r.stderr}`);
  const source = readFileSync(join(root, 'test', 'types', 'api.ts'), 'utf8');
  t.ok(
    (source.match(/@ts-expect-error/g) ?? []).length >= 8,
    'the negative cases are there ([42], key typos, unknown code)',
  );
});

const packDir = mkdtempSync(join(tmpdir(), 'kata-package-'));
t.teardown(() => rmSync(packDir, { recursive: true, force: true }));
const packed = packHere(packDir);

t.test('publint and arethetypeswrong on the packed tarball', async (t) => {
  const { tarball } = packed;
  const lint = spawnSync(bin('publint'), ['run', tarball, '--strict', '--pack', 'false'], {
    encoding: 'utf8',
    env: npmEnv(),
  });
  t.equal(lint.status, 0, `publint:\n${lint.stdout}${lint.stderr}`);
  t.notMatch(lint.stdout, /warning|error|suggestion/i, lint.stdout);
  const attw = spawnSync(bin('attw'), [tarball, '--format', 'ascii', '--no-color', '--no-emoji'], {
    encoding: 'utf8',
    env: npmEnv(),
  });
  t.equal(attw.status, 0, `attw:\n${attw.stdout}${attw.stderr}`);
});

t.test('the tarball: whitelist, LICENSE, source maps with their sources', async (t) => {
  const { files } = packed;
  const problems = fileListProblems(files, (rel) => readFileSync(join(root, rel), 'utf8'));
  // Prebuilds exist only after npm run prebuild; everything else must hold in every checkout.
  const prebuilt = existsSync(join(root, 'prebuilds')) && readdirSync(join(root, 'prebuilds')).length === ARCHES.length;
  t.same(
    problems.filter((p) => prebuilt || !/^missing: prebuilds\//.test(p)),
    [],
    'nothing stray, missing or dangling',
  );
  t.ok(
    files.some((f) => f.endsWith('.js.map')),
    'source maps are shipped...',
  );
  t.ok(files.includes('lib/index.ts'), '...with the sources they point at');

  // The check itself catches each kind of fault.
  const read = (rel: string): string => (rel === 'dist/a.js.map' ? JSON.stringify({ sources: ['../lib/a.ts'] }) : '');
  const found = fileListProblems(['package.json', 'dist/a.js', 'dist/a.js.map', 'notes.txt'], read);
  t.ok(found.includes('dist/a.js.map points at lib/a.ts, which is not packed'));
  t.ok(found.includes('outside the whitelist: notes.txt'));
  t.ok(found.includes('missing: LICENSE'));
  t.ok(found.includes('missing: prebuilds/linux-s390x/kata-storage.glibc.node'));
});

t.test('a plain npm pack without verified prebuilds is refused', async (t) => {
  const dir = scratch(t);
  mkdirSync(join(dir, 'scripts'));
  for (const f of ['release-pack.js', 'verify-prebuilds.js'])
    copyFileSync(join(root, 'scripts', f), join(dir, 'scripts', f));
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({
      name: 'kata-storage',
      version: '0.0.0',
      scripts: { prepack: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts.prepack },
    }),
  );
  const none = spawnSync('npm', ['pack', '--dry-run'], { cwd: dir, encoding: 'utf8', env: npmEnv() });
  t.not(none.status, 0, 'no prebuilds: refused');
  t.match(none.stderr, /refusing to pack/);
  t.match(none.stderr, /linux-x64: missing/);
  // Files that are there but are not the addon the gate expects (not ELF) are refused as well.
  for (const arch of ARCHES) {
    mkdirSync(join(dir, 'prebuilds', `linux-${arch}`), { recursive: true });
    writeFileSync(join(dir, 'prebuilds', `linux-${arch}`, 'kata-storage.glibc.node'), 'not an addon');
  }
  const bad = spawnSync('npm', ['pack', '--dry-run'], { cwd: dir, encoding: 'utf8', env: npmEnv() });
  t.not(bad.status, 0, 'unverifiable prebuilds: refused');
  t.match(bad.stderr, /not an ELF file/);
  t.equal(readdirSync(dir).filter((f) => f.endsWith('.tgz')).length, 0, 'no tarball was written');
});

t.test('installed dependencies: only what loading a prebuild needs', async (t) => {
  t.same(Object.keys(pkg.dependencies), ['node-gyp-build']);
  t.ok(
    pkg.devDependencies['cmake-js'] && pkg.devDependencies['node-addon-api'],
    'the build-time packages are devDependencies',
  );
});

t.test('the install script honours npm_config_build_from_source and says what a source build needs', async (t) => {
  t.equal(fromSourceRequested({ npm_config_build_from_source: 'true' }), true);
  t.equal(fromSourceRequested({ npm_config_build_from_source: 'kata-storage' }), true);
  t.equal(fromSourceRequested({ npm_config_build_from_source: 'false' }), false);
  t.equal(fromSourceRequested({ npm_config_build_from_source: '' }), false);
  t.equal(fromSourceRequested({}), false);
  // An installed copy without the build-time packages: asked to build, it fails and says how.
  const dir = scratch(t);
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(join(root, 'scripts', 'install.js'), join(dir, 'scripts', 'install.js'));
  writeFileSync(join(dir, 'package.json'), '{"name":"kata-storage","version":"0.0.0"}');
  const r = spawnSync(process.execPath, [join(dir, 'scripts', 'install.js')], {
    cwd: dir,
    encoding: 'utf8',
    env: npmEnv({ npm_config_build_from_source: 'true', NODE_PATH: '' }),
  });
  t.equal(r.status, 1);
  t.match(r.stderr, /npm_config_build_from_source is set: building instead of using the prebuild/);
  t.match(r.stderr, /building from source needs cmake-js and node-addon-api/);
  t.match(r.stderr, /npm install -D cmake-js@8 node-addon-api@8 && npm rebuild kata-storage --build-from-source/);
});

t.test('every error code thrown anywhere is in the StorageErrorCode union', async (t) => {
  const errors = readFileSync(join(root, 'lib', 'errors.ts'), 'utf8');
  const union = errors.slice(
    errors.indexOf('export interface StorageErrorFields'),
    errors.indexOf('export type StorageErrorCode'),
  );
  const codes = new Set<string>();
  const walk = (dir: string, re: RegExp): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p, re);
      else if (/\.(ts|cc|h)$/.test(e.name)) for (const m of readFileSync(p, 'utf8').matchAll(re)) codes.add(m[1]!);
    }
  };
  // Every code literal in lib/ (helpers such as refuse('ERR_...') included), but the TypeError one.
  walk(join(root, 'lib'), /'(ERR_[A-Z_]+)'/g);
  codes.delete('ERR_INVALID_ARG_TYPE');
  walk(join(root, 'native'), /"(ERR_[A-Z_]+)"/g);
  t.ok(codes.size >= 15, `found ${codes.size} codes`);
  for (const code of codes) t.match(union, new RegExp(`\\n  ${code}: \\{`), `${code} is in StorageErrorFields`);
});

t.test('docs: every export is in docs/api.md; LICENSE, CHANGELOG; MountFlags described as it is', async (t) => {
  // kata-storage and kata-storage/runtime: `export { ... }` and `export type { ... }` lists.
  const exportsOf = (file: string): string[] =>
    [...readFileSync(join(root, 'lib', file), 'utf8').matchAll(/export (?:type )?\{([^}]*)\}/g)].flatMap((m) =>
      m[1]!
        .split(',')
        .map((n) =>
          n
            .trim()
            .replace(/^type /, '')
            .split(/\s+as\s+/)
            .pop()!,
        )
        .filter(Boolean),
    );
  const runtime = exportsOf(join('runtime', 'index.ts'));
  t.ok(
    runtime.includes('planContainer') && runtime.includes('PlanErrorCode'),
    `${runtime.length} kata-storage/runtime exports`,
  );
  const names = [...exportsOf('index.ts'), ...runtime];
  t.ok(names.length > 80, `${names.length} exports`);
  const api = readFileSync(join(root, 'docs', 'api.md'), 'utf8');
  for (const n of names) t.ok(new RegExp(`\`[^\`\n]*\\b${n}\\b[^\`\n]*\``).test(api), `docs/api.md documents ${n}`);
  const license = readFileSync(join(root, 'LICENSE'), 'utf8');
  t.match(license, /Apache License\s+Version 2\.0, January 2004/);
  t.match(license, /END OF TERMS AND CONDITIONS/);
  t.match(readFileSync(join(root, 'CHANGELOG.md'), 'utf8'), /^# Changelog\n/);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { MountFlags } = require('../../lib/index') as typeof import('../../lib/index');
  const keys = Object.keys(MountFlags);
  t.ok(
    keys.includes('BIND') && keys.every((k) => /^[A-Z_]+$/.test(k) && !k.startsWith('MS_')),
    'keys are MS_ names without MS_',
  );
  t.match(api, /keyed by the name\s+without `MS_`:\s+`MountFlags\.BIND === MS_BIND`/);
});
