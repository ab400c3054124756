'use strict';
// What a guest run needs from outside the repository: this machine's apt packages (QEMU, busybox,
// the image tools), Debian's kernels and virtiofsd unpacked into the cache (fetch.sh: apt-get
// download + dpkg-deb -x, never installed), and, for a foreign architecture, Debian's Node for it
// and the package's prebuild.
const fs = require('node:fs');
const path = require('node:path');
const { repo, sh } = require('./shell');

/** The host packages the named `plans` need: QEMU for their machines and the tools for their images. */
function aptPackages(plans) {
  return [
    'qemu-system-x86',
    'busybox-static',
    'kmod',
    'cpio',
    'e2fsprogs',
    ...(plans.includes('arm64') ? ['qemu-system-arm'] : []),
    ...(plans.includes('s390x') ? ['qemu-system-misc'] : []),
    ...(plans.includes('verity') ? ['cryptsetup-bin'] : []),
    ...(plans.includes('q35') ? ['erofs-utils'] : []),
  ];
}

/** Installs (apt-get, needs root) those of aptPackages(`plans`) dpkg does not list as installed. */
function ensureApt(plans) {
  const missing = aptPackages(plans).filter((p) => {
    try {
      return !/install ok installed/.test(
        sh('dpkg-query', ['-W', '-f=${Status}', p], { stdio: ['ignore', 'pipe', 'ignore'] }),
      );
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return;
  console.log(`guest: installing ${missing.join(' ')}`);
  sh('apt-get', ['update', '-qq']);
  sh('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

/** Unpacks `what` (a name fetch.sh knows, e.g. kernel-bookworm-amd64) under `cache`; returns its directory. */
function fetchDeb(what, cache) {
  return sh('sh', [path.join(__dirname, 'fetch.sh'), what, cache])
    .trim()
    .split('\n')
    .pop();
}

/**
 * Debian's Node for `arch` unpacked under `cache` (scripts/qemu-sysroot.sh), and the package's
 * prebuild for it made if missing (npm run prebuild -- <arch>); returns the sysroot.
 */
function foreignNode(arch, cache) {
  const sysroot = path.join(cache, `sysroot-${arch}`);
  sh('sh', [path.join(repo, 'scripts/qemu-sysroot.sh'), arch, sysroot], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (!fs.existsSync(path.join(repo, `prebuilds/linux-${arch}`)))
    sh('npm', ['run', '-s', 'prebuild', '--', arch], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  return sysroot;
}

module.exports = { ensureApt, fetchDeb, foreignNode };
