#!/usr/bin/env node
// prebuildify 6 only knows node-gyp; this stands in for it (prebuildify --node-gyp) and turns its
// `rebuild --target=.. --devdir=.. --arch=.. --release|--debug` into a cmake-js build. The addon is
// Node-API only, so --target and --devdir (Node headers) are irrelevant and ignored.
//
// Each arch builds in its own build-prebuild/<arch>/ tree, so arches never share a CMake cache and
// reruns are incremental (prebuildify always says `rebuild`; Ninja's dependency tracking makes a
// clean start pointless). The result is copied to build/<Config>/, the one place prebuildify looks
// for it (and from where it moves it away: scripts/prebuild.sh puts the dev build back after).
'use strict';
const { spawnSync } = require('node:child_process');
const { copyFileSync, mkdirSync, readdirSync, rmSync } = require('node:fs');
const { join, resolve } = require('node:path');

const root = resolve(__dirname, '..');

// node arch -> CMake toolchain file; the host's own arch needs none.
const TOOLCHAINS = {
  arm64: 'cmake/aarch64-linux-gnu.cmake',
  s390x: 'cmake/s390x-linux-gnu.cmake',
};

function parse(argv) {
  const opts = { command: argv[0], arch: process.arch, debug: false };
  for (const a of argv.slice(1)) {
    const [key, value] = a.replace(/^--/, '').split(/=(.*)/s);
    if (key === 'arch') opts.arch = value;
    else if (key === 'debug') opts.debug = true;
    else if (key === 'release') opts.debug = false;
    else if (!['target', 'devdir', 'build_v8_with_gn'].includes(key)) {
      throw new Error(`node-gyp-cmake: unsupported node-gyp argument ${a}`);
    }
  }
  if (opts.command !== 'rebuild' && opts.command !== 'build') {
    throw new Error(`node-gyp-cmake: unsupported node-gyp command ${opts.command ?? '(none)'}`);
  }
  return opts;
}

function main() {
  const opts = parse(process.argv.slice(2));
  const config = opts.debug ? 'Debug' : 'Release';
  const cross = opts.arch !== process.arch;
  if (cross && !TOOLCHAINS[opts.arch]) {
    throw new Error(
      `node-gyp-cmake: no toolchain file for --arch=${opts.arch} (have: ${Object.keys(TOOLCHAINS).join(', ')})`,
    );
  }
  const out = join(root, 'build-prebuild', opts.arch);
  const args = [
    require.resolve('cmake-js/bin/cmake-js'),
    'build',
    '--directory',
    root,
    '--out',
    out,
    '--arch',
    opts.arch,
    '--config',
    config,
    '--CDKATA_WERROR=ON',
  ];
  if (cross) args.push(`--CDCMAKE_TOOLCHAIN_FILE=${join(root, TOOLCHAINS[opts.arch])}`);
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);

  const built = join(out, config);
  const addons = readdirSync(built).filter((f) => f.endsWith('.node'));
  if (addons.length !== 1) throw new Error(`node-gyp-cmake: expected one .node in ${built}, found ${addons.length}`);
  const dest = join(root, 'build', config);
  mkdirSync(dest, { recursive: true });
  // prebuildify takes the first .node it lists there; a stale dev build must not be it.
  for (const f of readdirSync(dest)) if (f.endsWith('.node') && f !== addons[0]) rmSync(join(dest, f));
  copyFileSync(join(built, addons[0]), join(dest, addons[0]));
}

try {
  main();
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
