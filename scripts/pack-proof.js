#!/usr/bin/env node
// The published shape, proven (run as root after npm run prebuild): the tarball `npm pack` makes
// holds exactly the whitelist (dist/, the three prebuilds, native sources, CMakeLists.txt, cmake/);
// installed into an empty project by a clean npm (no user config, install scripts not approved),
// it loads its prebuild without compiling anything and mounts a tmpfs; and the sources it ships
// still build where a compiler exists.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const ARCHES = ['x64', 'arm64', 's390x'];
const ALLOWED = [
  /^package\.json$/,
  /^README\.md$/,
  /^LICEN[CS]E(\.\w+)?$/,
  /^dist\/([\w-]+\/)*[\w.-]+\.(js|d\.ts|js\.map)$/,
  /^prebuilds\/linux-(x64|arm64|s390x)\/kata-storage\.glibc\.node$/,
  /^native\/(core|binding)\/[\w-]+\.(cc|h)$/,
  /^cmake\/[\w.-]+\.cmake$/,
  /^CMakeLists\.txt$/,
];

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
  return r.stdout;
}

function main() {
  step('npm pack --dry-run: the file list');
  const [info] = JSON.parse(run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, env: cleanEnv() }));
  const files = info.files.map((f) => f.path).sort();
  const stray = files.filter((f) => !ALLOWED.some((re) => re.test(f)));
  if (stray.length) throw new Error(`the tarball would carry files outside the whitelist:\n  ${stray.join('\n  ')}`);
  const required = ['dist/index.js', 'dist/index.d.ts', 'dist/runtime/index.js', 'dist/runtime/index.d.ts', 'CMakeLists.txt', ...ARCHES.map((a) => `prebuilds/linux-${a}/kata-storage.glibc.node`)];
  const missing = required.filter((f) => !files.includes(f));
  if (missing.length) throw new Error(`the tarball would lack: ${missing.join(', ')} (npm run build:ts && npm run prebuild first)`);
  console.log(`  ${files.length} files, ${(info.size / 1024).toFixed(0)} KiB packed: ${[...new Set(files.map((f) => f.split('/')[0]))].join(' ')}`);

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kata-pack-'));
  try {
    step('npm pack');
    run('npm', ['pack', '--ignore-scripts', '--pack-destination', work], { cwd: root, env: cleanEnv() });
    const tarball = path.join(work, fs.readdirSync(work).find((f) => f.endsWith('.tgz')));

    step('npm install of the tarball into an empty project (clean npm config, scripts not approved)');
    const project = path.join(work, 'consumer');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    const userconfig = path.join(work, 'user-npmrc');
    const globalconfig = path.join(work, 'global-npmrc');
    fs.writeFileSync(userconfig, '');
    fs.writeFileSync(globalconfig, '');
    const npmEnv = cleanEnv({ npm_config_userconfig: userconfig, npm_config_globalconfig: globalconfig });
    const out = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: project, env: npmEnv });
    console.log(`  ${out.trim().split('\n').pop()}`);
    const installed = path.join(project, 'node_modules', 'kata-storage');
    if (fs.existsSync(path.join(installed, 'build'))) {
      throw new Error(`installing compiled the addon (${installed}/build exists): the prebuild was not used`);
    }

    step('require it and mount a tmpfs (private mount namespace)');
    const consumer = path.join(project, 'consumer.js');
    fs.writeFileSync(consumer, CONSUMER);
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', process.execPath, consumer], {
      cwd: project, encoding: 'utf8', env: cleanEnv(),
    });
    process.stdout.write(r.stdout.trimEnd().replace(/^/gm, '  ') + '\n');
    if (r.status !== 0) throw new Error(`the consumer failed:\n${r.stderr}`);
    if (fs.existsSync(path.join(installed, 'build'))) throw new Error('loading compiled the addon');

    step('the shipped sources still build (cmake-js compile inside the installed package)');
    run(path.join(project, 'node_modules', '.bin', 'cmake-js'), ['compile'], { cwd: installed, env: cleanEnv() });
    const built = run(process.execPath, ['-e', SOURCE_BUILD_CHECK], { cwd: project, env: cleanEnv() });
    console.log(`  ${built.trim()}`);
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
