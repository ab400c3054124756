'use strict';
// The disk images the host makes for the guest to mount, each in the run's work directory: ext4
// images (or blank disks) holding a marker the guest reads back, EROFS images, and dm-verity images.
const fs = require('node:fs');
const path = require('node:path');
const { sh } = require('./shell');

/**
 * `<work>/<name>.img`, an ext4 image of `sizeMb` MiB whose kata-marker file holds `marker` (made by
 * the host, read by the guest); with no `marker`, a blank (zero) disk of that size.
 */
function image(work, name, marker, sizeMb = 32) {
  const dir = path.join(work, `${name}.d`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  if (marker !== undefined) fs.writeFileSync(path.join(dir, 'kata-marker'), `${marker}\n`);
  const img = path.join(work, `${name}.img`);
  fs.rmSync(img, { force: true });
  if (marker === undefined) {
    fs.writeFileSync(img, '');
    fs.truncateSync(img, sizeMb << 20);
  } else {
    sh('mkfs.ext4', ['-q', '-F', '-d', dir, img, `${sizeMb}M`]);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return img;
}

/** `<work>/<name>.erofs`, an EROFS image (mkfs.erofs) of `files` ({ relative path: content }). */
function erofsImage(work, name, files) {
  const dir = path.join(work, `${name}.d`);
  fs.rmSync(dir, { recursive: true, force: true });
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), content);
  }
  const img = path.join(work, `${name}.erofs`);
  fs.rmSync(img, { force: true });
  sh('mkfs.erofs', ['--quiet', img, dir]);
  fs.rmSync(dir, { recursive: true, force: true });
  return img;
}

/**
 * `<work>/<name>.img`: veritysetup on a 16 MiB ext4 image holding `marker`, data then hash tree on
 * the one file (--hash-offset). Returns { img, info }, info being Kata's verity_info for it.
 */
function verityImage(work, name, marker) {
  const dir = path.join(work, `${name}.d`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'kata-marker'), `${marker}\n`);
  // One recognizable 4 KiB block, to corrupt in a copy.
  fs.writeFileSync(path.join(dir, 'payload'), 'KATA-VERITY-PAYLOAD-'.repeat(4096 / 20 + 1).slice(0, 4096));
  const img = path.join(work, `${name}.img`);
  fs.rmSync(img, { force: true });
  const dataBytes = 16 << 20;
  sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', dir, img, `${dataBytes >> 10}K`]);
  fs.rmSync(dir, { recursive: true, force: true });
  const out = sh('veritysetup', ['format', `--hash-offset=${dataBytes}`, img, img]);
  const field = (k) => (new RegExp(`^${k}:\\s*(\\S+)`, 'm').exec(out) || [])[1];
  const info = {
    hashtype: field('Hash algorithm'),
    hash: field('Root hash'),
    blocknum: Number(field('Data blocks')),
    blocksize: Number(field('Data block size')),
    hashsize: Number(field('Hash block size')),
    offset: dataBytes,
    salt: field('Salt'),
    hash_type: Number(field('Hash type')),
  };
  return { img, info };
}

module.exports = { image, erofsImage, verityImage };
