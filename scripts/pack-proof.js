#!/usr/bin/env node
// The published shape, proven (run as root after npm run prebuild): the tarball release:pack makes
// (gated prebuilds, exactly the whitelist, source maps with their sources), installed into an
// empty project by a clean npm (no user config, install scripts not approved) with no compiler on
// PATH, pulls in only node-gyp-build, loads its prebuild without compiling and mounts a tmpfs; and
// the sources it ships still build from source the way docs/install.md says.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
// What an installed kata-storage may pull in: only what loading a prebuild needs.
const RUNTIME_DEPENDENCIES = ['node-gyp-build'];

function step(what) {
  console.log(`pack-proof: ${what}`);
}

// npm run passes its own configuration down as npm_config_*; the consumer must not inherit it,
// nor a loader override that would bypass the installed package's own search.
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && k !== 'KATA_STORAGE_ADDON' && k !== 'PREBUILDS_ONLY') env[k] = v;
  }
  return { ...env, ...extra };
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  }
  return r;
}

/**
 * A PATH with node, npm and a shell and nothing else: no cc, c++, g++, cmake, make or ninja, as
 * in a guest image. Proves the install neither compiles nor needs to.
 */
function pathWithoutCompiler(work) {
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  const npmCli = fs.realpathSync(run('sh', ['-c', 'command -v npm']).stdout.trim());
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync(npmCli, path.join(bin, 'npm'));
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
  for (const tool of ['cc', 'c++', 'g++', 'gcc', 'cmake', 'make', 'ninja']) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { env: { PATH: bin } });
    if (found.status === 0) throw new Error(`${tool} is still reachable on the stripped PATH`);
  }
  return bin;
}

/** `dir` made as an empty npm project for the tarball to be installed into; returns `dir`. */
function emptyProject(dir) {
  fs.mkdirSync(dir);
  fs.writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }),
  );
  return dir;
}

function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kata-pack-'));
  try {
    step('npm run release:pack (prebuild gate, whitelist, source maps)');
    const tarball = run('npm', ['run', '-s', 'release:pack', '--', '--pack-destination', work], {
      cwd: root,
      env: cleanEnv(),
    })
      .stdout.trim()
      .split('\n')
      .pop();
    console.log(`  ${path.basename(tarball)}`);

    step('npm install of the tarball into an empty project: clean npm config, no compiler on PATH');
    const project = emptyProject(path.join(work, 'consumer'));
    const userconfig = path.join(work, 'user-npmrc');
    const globalconfig = path.join(work, 'global-npmrc');
    fs.writeFileSync(userconfig, '');
    fs.writeFileSync(globalconfig, '');
    const bare = pathWithoutCompiler(work);
    const npmEnv = cleanEnv({ npm_config_userconfig: userconfig, npm_config_globalconfig: globalconfig, PATH: bare });
    const out = run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', tarball],
      { cwd: project, env: npmEnv },
    );
    const said = `${out.stdout}${out.stderr}`;
    console.log(`  ${out.stdout.trim().split('\n').pop()}`);
    // What this npm does with a dependency's install script nobody approved (README "Install").
    const warning = said.split('\n').find((l) => /allowScripts|allow-scripts/i.test(l));
    const ran = /kata-storage: the addon for linux-\w+ loads: nothing to build/.test(said);
    console.log(
      `  npm ${run('npm', ['--version'], { env: npmEnv }).stdout.trim()}: ${warning ? `warned (${warning.trim()})` : 'no install-script warning'}; ` +
        `the install script ${ran ? 'ran (and built nothing)' : 'did not run'}`,
    );
    // The README's Install section must say what this npm really did.
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8').replace(/\s+/g, ' ');
    const npmVersion = run('npm', ['--version'], { env: npmEnv }).stdout.trim();
    const claim = warning && ran ? 'warns that it is "not yet covered by allowScripts" and still runs it' : null;
    if (!claim || !readme.includes(`npm ${npmVersion.split('.').slice(0, 2).join('.')} ${claim}`)) {
      throw new Error(
        `README's Install section does not describe npm ${npmVersion} (warned: ${Boolean(warning)}, ran the script: ${ran})`,
      );
    }
    const installed = path.join(project, 'node_modules', 'kata-storage');
    if (fs.existsSync(path.join(installed, 'build'))) {
      throw new Error(`installing compiled the addon (${installed}/build exists): the prebuild was not used`);
    }
    const lock = JSON.parse(fs.readFileSync(path.join(project, 'package-lock.json'), 'utf8'));
    const deps = Object.keys(lock.packages)
      .filter((p) => p.startsWith('node_modules/') && p !== 'node_modules/kata-storage')
      .map((p) => p.slice('node_modules/'.length));
    const kib = run('du', ['-sk', path.join(project, 'node_modules')]).stdout.split('\t')[0];
    console.log(
      `  runtime dependencies installed: ${deps.length} (${deps.join(', ')}); node_modules ${kib} KiB in all`,
    );
    if (deps.join() !== RUNTIME_DEPENDENCIES.join())
      throw new Error(`expected exactly ${RUNTIME_DEPENDENCIES.join(', ')}`);

    step('require it and mount a tmpfs (private mount namespace, no compiler on PATH)');
    const consumer = path.join(project, 'consumer.js');
    fs.writeFileSync(consumer, CONSUMER);
    const unshare = run('sh', ['-c', 'command -v unshare']).stdout.trim();
    const r = spawnSync(unshare, ['-m', '--propagation', 'private', process.execPath, consumer], {
      cwd: project,
      encoding: 'utf8',
      env: cleanEnv({ PATH: bare }),
    });
    process.stdout.write(`${(r.stdout ?? '').trimEnd().replace(/^/gm, '  ')}\n`);
    if (r.status !== 0) throw new Error(`the consumer failed (${r.error?.message ?? r.status}):\n${r.stderr}`);
    if (fs.existsSync(path.join(installed, 'build'))) throw new Error('loading compiled the addon');
    const help = run(path.join(project, 'node_modules', '.bin', 'kata-storage'), ['--version'], {
      cwd: project,
      env: cleanEnv({ PATH: bare }),
    });
    console.log(`  the bin runs: kata-storage --version -> ${help.stdout.trim()}`);

    step('the same with --ignore-scripts (README: skipping the install script changes nothing)');
    const quiet = emptyProject(path.join(work, 'consumer-ignore-scripts'));
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', tarball], {
      cwd: quiet,
      env: npmEnv,
    });
    const loads = run(
      process.execPath,
      [
        '-e',
        "console.log(require('kata-storage').parseMountOptions(['ro']).flags === 1 ? 'loads and parses' : 'WRONG')",
      ],
      {
        cwd: quiet,
        env: cleanEnv({ PATH: bare }),
      },
    ).stdout.trim();
    if (loads !== 'loads and parses') throw new Error(`with --ignore-scripts: ${loads}`);
    console.log(`  ${loads}`);

    step('building from source as docs/install.md says: build-time packages, then npm rebuild --build-from-source');
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    const buildDeps = ['cmake-js', 'node-addon-api'].map((d) => `${d}@${pkg.devDependencies[d]}`);
    const fullEnv = cleanEnv({ npm_config_userconfig: userconfig, npm_config_globalconfig: globalconfig });
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '-D', ...buildDeps], {
      cwd: project,
      env: fullEnv,
    });
    run('npm', ['rebuild', 'kata-storage', '--build-from-source', '--foreground-scripts'], {
      cwd: project,
      env: fullEnv,
    });
    const built = run(process.execPath, ['-e', SOURCE_BUILD_CHECK], { cwd: project, env: cleanEnv() });
    console.log(`  ${built.stdout.trim()}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.log('pack-proof: ok');
}

// Runs in the consumer project, as an agent would use the package.
const CONSUMER = `'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const ks = require('kata-storage');
const pkg = path.dirname(require.resolve('kata-storage/package.json'));
const loaded = require('node-gyp-build').resolve(pkg);
assert.equal(path.relative(pkg, loaded), path.join('prebuilds', 'linux-' + process.arch, 'kata-storage.glibc.node'));
console.log('loaded ' + path.relative(process.cwd(), loaded));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kata-consumer-'));
const at = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').filter((l) => l.split(' ')[4] === dir);
ks.mountSync('tmpfs', dir, 'tmpfs', ['size=1m', 'mode=755']);
assert.match(at()[0] || '', / - tmpfs tmpfs .*size=1024k/);
assert.equal(ks.isMountPoint(dir), true);
ks.umountSync(dir);
assert.deepEqual(at(), []);
fs.rmdirSync(dir);
console.log('mounted and unmounted a tmpfs at ' + dir);
const { planSandbox } = require('kata-storage/runtime');
assert.equal(planSandbox({ sharedFs: 'virtio-9p' }).storages[0].driver, '9p');
console.log('kata-storage/runtime planned a sandbox');
`;

const SOURCE_BUILD_CHECK = `
const path = require('node:path');
const pkg = path.dirname(require.resolve('kata-storage/package.json'));
const loaded = require('node-gyp-build').resolve(pkg);
if (path.relative(pkg, loaded) !== path.join('build', 'Release', 'kata_storage.node')) throw new Error('loaded ' + loaded);
const { parseMountOptions } = require('kata-storage');
if (parseMountOptions(['ro']).flags !== 1) throw new Error('source build misbehaves');
console.log('source build loads: ' + path.relative(process.cwd(), loaded));
`;

try {
  main();
} catch (err) {
  console.error(`pack-proof: FAIL: ${err.message}`);
  process.exitCode = 1;
}
