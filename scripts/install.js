#!/usr/bin/env node
// The installed package's install script (npm runs it where the consumer lets install scripts run).
// Like node-pty's: the prebuild for this platform is used when it loads, unless the consumer asks
// for a source build (`npm install --build-from-source`, `npm_config_build_from_source=true`).
// Building needs cmake, a C++17 compiler and the two build-time packages, which are not runtime
// dependencies (a prebuild needs neither): `npm install -D cmake-js@8 node-addon-api@8`.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const say = (line) => console.error(`kata-storage: ${line}`);

/** npm sets npm_config_build_from_source from --build-from-source or .npmrc; 'kata-storage' names us. */
function fromSourceRequested(env = process.env) {
  const v = env.npm_config_build_from_source;
  return v === 'true' || v === '1' || v === 'kata-storage';
}

/** The prebuild (or an earlier build) node-gyp-build would load, or the reason it cannot. */
function loadable() {
  try {
    require('node-gyp-build')(root);
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: err.message.split('\n')[0] };
  }
}

function resolveFrom(request) {
  try {
    return require.resolve(request, { paths: [root] });
  } catch {
    return undefined;
  }
}

function build() {
  const cmakeJsPkg = resolveFrom('cmake-js/package.json');
  const missing = [cmakeJsPkg ? null : 'cmake-js', resolveFrom('node-addon-api') ? null : 'node-addon-api'].filter(
    Boolean,
  );
  if (missing.length > 0) {
    say(`building from source needs ${missing.join(' and ')} (build-time only, not runtime dependencies):`);
    say('  npm install -D cmake-js@8 node-addon-api@8 && npm rebuild kata-storage --build-from-source');
    say('  (and cmake, g++ and make or ninja: apt-get install cmake g++ make)');
    return { attempted: false, status: 1 };
  }
  const bin = require(cmakeJsPkg).bin;
  const cli = path.join(path.dirname(cmakeJsPkg), typeof bin === 'string' ? bin : bin['cmake-js']);
  say('building the addon from source with cmake-js');
  const r = spawnSync(process.execPath, [cli, 'compile'], { cwd: root, stdio: 'inherit' });
  return { attempted: true, status: r.status ?? 1 };
}

function main() {
  if (fromSourceRequested()) {
    say('npm_config_build_from_source is set: building instead of using the prebuild');
    return build().status;
  }
  const found = loadable();
  if (found.ok) {
    // npm shows this only with --foreground-scripts; it proves the script ran and built nothing.
    say(`the addon for ${process.platform}-${process.arch} loads: nothing to build`);
    return 0;
  }
  say(`no usable prebuild for ${process.platform}-${process.arch} (${found.reason})`);
  const { attempted, status } = build();
  // Without the build-time packages an unsupported platform still installs (types, docs); loading
  // then throws ERR_NATIVE_LOAD with the same instructions. A build that ran and failed fails.
  if (attempted) return status;
  say('the package installed without its addon; require() will throw ERR_NATIVE_LOAD');
  return 0;
}

if (require.main === module) process.exitCode = main();

module.exports = { fromSourceRequested };
