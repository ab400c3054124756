#!/usr/bin/env node
// npm run release:pack [-- --pack-destination DIR]: the only way to make the tarball we publish.
// It refuses unless the three prebuilds exist and pass the gate (scripts/verify-prebuilds.js),
// packs through npm (whose prepack hook runs the same guard, so a plain `npm pack` or `npm publish`
// without prebuilds is refused too), then checks what the tarball holds: exactly the whitelist,
// every required file, and source maps whose sources travel with them. Prints the tarball's path.
//
// `node scripts/release-pack.js --guard` is the prepack hook: the prebuild check alone.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ARCHES = ['x64', 'arm64', 's390x'];
/** What the published package may hold (package.json "files" plus what npm always adds). */
const ALLOWED = [
  /^package\.json$/,
  /^README\.md$/,
  /^CHANGELOG\.md$/,
  /^LICEN[CS]E(\.\w+)?$/,
  /^dist\/([\w-]+\/)*[\w.-]+\.(js|d\.ts|js\.map)$/,
  /^lib\/([\w-]+\/)*[\w.-]+\.ts$/,
  /^prebuilds\/linux-(x64|arm64|s390x)\/kata-storage\.glibc\.node$/,
  /^native\/(core|binding)\/[\w-]+\.(cc|h)$/,
  /^cmake\/[\w.-]+\.cmake$/,
  /^CMakeLists\.txt$/,
  /^scripts\/install\.js$/,
];
const REQUIRED = [
  'package.json',
  'LICENSE',
  'README.md',
  'dist/index.js',
  'dist/index.d.ts',
  'dist/runtime/index.js',
  'dist/runtime/index.d.ts',
  'dist/cli.js',
  'CMakeLists.txt',
  'scripts/install.js',
  ...ARCHES.map((a) => `prebuilds/linux-${a}/kata-storage.glibc.node`),
];

/**
 * The problems of a packed file list: strays, missing files, and source maps naming a source the
 * tarball lacks (`readFile(rel)` reads a packed file's text from the package root).
 */
function fileListProblems(files, readFile) {
  const have = new Set(files);
  const problems = [];
  for (const f of files) if (!ALLOWED.some((re) => re.test(f))) problems.push(`outside the whitelist: ${f}`);
  for (const f of REQUIRED) if (!have.has(f)) problems.push(`missing: ${f}`);
  for (const map of files.filter((f) => f.endsWith('.js.map'))) {
    const { sources = [], sourceRoot = '' } = JSON.parse(readFile(map));
    for (const s of sources) {
      const rel = path.posix.normalize(path.posix.join(path.posix.dirname(map), sourceRoot, s));
      if (!have.has(rel)) problems.push(`${map} points at ${rel}, which is not packed`);
    }
  }
  return problems;
}

/** Runs the prebuild gate on <root>/prebuilds for every arch; returns its exit status. */
function guard(root) {
  const dir = path.join(root, 'prebuilds');
  const r = spawnSync(
    process.execPath,
    [path.join(__dirname, 'verify-prebuilds.js'), dir, '--arch', ARCHES.join(',')],
    {
      encoding: 'utf8',
    },
  );
  process.stdout.write(r.stdout);
  if (r.status === 0) return 0;
  process.stderr.write(r.stderr);
  console.error(
    `kata-storage: refusing to pack: the published package must carry a verified prebuild for linux-${ARCHES.join(', linux-')}.\n` +
      '  Build them (npm run prebuild, see docs/install.md "Building from source"), then npm run release:pack.',
  );
  return 1;
}

function run(cmd, args, opts) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  return r.stdout;
}

function main(argv) {
  const root = path.resolve(__dirname, '..');
  if (argv[0] === '--guard') return guard(root);
  let dest = root;
  const i = argv.indexOf('--pack-destination');
  if (i >= 0) dest = path.resolve(argv[i + 1]);
  if (guard(root) !== 0) return 1;
  run('npm', ['run', '-s', 'build:ts'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  // npm pack runs prepack (the guard again: it also protects a plain npm pack) and prepare.
  const out = run('npm', ['pack', '--json', '--pack-destination', dest], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const info = JSON.parse(out.slice(out.indexOf('[')))[0];
  const files = info.files.map((f) => f.path).sort();
  const problems = fileListProblems(files, (rel) => fs.readFileSync(path.join(root, rel), 'utf8'));
  const tarball = path.join(dest, info.filename);
  if (problems.length > 0) {
    fs.rmSync(tarball, { force: true });
    console.error(`release:pack: the tarball is wrong, removed it:\n  ${problems.join('\n  ')}`);
    return 1;
  }
  console.error(
    `release:pack: ${files.length} files, ${(info.size / 1024).toFixed(0)} KiB packed, unpacked ${(info.unpackedSize / 1024).toFixed(0)} KiB`,
  );
  console.log(tarball);
  return 0;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    console.error(`release:pack: ${err.message}`);
    process.exitCode = 1;
  }
}

module.exports = { fileListProblems, ALLOWED, REQUIRED, ARCHES };
