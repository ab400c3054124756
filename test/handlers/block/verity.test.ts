// dm-verity block volumes: verity_info parsing and the verity table against real veritysetup
// images here; the device-mapper ioctls' error paths here; the device itself where the kernel
// has device-mapper (this machine's has not: the QEMU guest scenario proves it).
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Sandbox,
  deviceNumber,
  parseVerityInfo,
  verityDeviceName,
  verityTable,
  type DmVerityInfo,
  type Storage,
} from '../../../lib/index';
import { attachImage } from '../../helpers/loop';
import { cannotMount, mountSnapshot, scratchDir } from '../../helpers/mountinfo';
import { treeSnapshot } from '../../helpers/tree';

type Teardown = { teardown(fn: () => void): void };
const haveVeritysetup = spawnSync('veritysetup', ['--version']).error === undefined;
const HASH = 'a'.repeat(64);
const good: DmVerityInfo = {
  hashtype: 'sha256',
  hash: HASH,
  blocknum: 1024,
  blocksize: 4096,
  hashsize: 4096,
  offset: 4194304,
};
const word = (o: unknown): string => `verity_info=${JSON.stringify(o)}`;

/**
 * An 8 MiB image: 4 MiB of ext4 (1024 blocks of 4 KiB) and, at 4 MiB, the hash area that
 * `veritysetup format --data-blocks=1024 --hash-offset=4194304 img img` writes. Returns the image
 * and the DmVerityInfo that describes it (root hash and salt read from veritysetup's output).
 */
function verityImage(t: Teardown): { img: string; info: DmVerityInfo } {
  const dir = mkdtempSync(join(tmpdir(), 'kata-storage-verity-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const img = join(dir, 'img');
  execFileSync('truncate', ['-s', '8M', img]);
  const tree = join(dir, 'tree');
  mkdirSync(tree);
  writeFileSync(join(tree, 'hello'), 'verified');
  execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-O', '^has_journal', '-d', tree, img, '1024']);
  const out = execFileSync('veritysetup', ['format', '--data-blocks=1024', '--hash-offset=4194304', img, img], {
    encoding: 'utf8',
  });
  const field = (name: string): string => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(out)![1]!;
  return {
    img,
    info: {
      hashtype: field('Hash algorithm'),
      hash: field('Root hash'),
      blocknum: Number(field('Data blocks')),
      blocksize: Number(field('Data block size')),
      hashsize: Number(field('Hash block size')),
      offset: 4194304,
      salt: field('Salt'),
      hash_type: Number(field('Hash type')),
    },
  };
}

t.test('verity_info: Kata DmVerityInfo JSON, every field checked', async (t) => {
  t.same(parseVerityInfo(word(good)), good);
  t.same(parseVerityInfo(word({ ...good, salt: '00ff', hash_type: 0, no_superblock: true, extra: 1 })), {
    ...good,
    salt: '00ff',
    hash_type: 0,
    no_superblock: true,
  });
  const bad: [string, unknown, string][] = [
    ['not JSON', 'verity_info={', 'JSON'],
    ['array', word([]), 'JSON'],
    ['missing hash', word({ ...good, hash: undefined }), 'hash'],
    ['hash not hex', word({ ...good, hash: 'g'.repeat(64) }), 'hash'],
    ['sha1 hash length for sha256', word({ ...good, hash: 'a'.repeat(40) }), 'hash'],
    ['md5', word({ ...good, hashtype: 'md5' }), 'hashtype'],
    ['hashtype number', word({ ...good, hashtype: 1 }), 'hashtype'],
    ['zero blocks', word({ ...good, blocknum: 0 }), 'blocknum'],
    ['2^32 blocks', word({ ...good, blocknum: 2 ** 32, offset: 2 ** 44 }), 'blocknum'],
    ['fractional', word({ ...good, blocknum: 1.5 }), 'blocknum'],
    ['negative', word({ ...good, offset: -1 }), 'offset'],
    ['string number', word({ ...good, blocksize: '4096' }), 'blocksize'],
    ['block size not a power of two', word({ ...good, blocksize: 3000 }), 'blocksize'],
    ['block size too big', word({ ...good, hashsize: 1 << 20 }), 'hashsize'],
    ['offset inside the data', word({ ...good, offset: 4096 }), 'offset'],
    ['offset unaligned', word({ ...good, offset: 4194304 + 512 }), 'offset'],
    ['odd salt', word({ ...good, salt: 'abc' }), 'salt'],
    ['salt with a space', word({ ...good, salt: 'ab cd' }), 'salt'],
    ['hash type 2', word({ ...good, hash_type: 2 }), 'hash_type'],
    ['no_superblock string', word({ ...good, no_superblock: 'yes' }), 'no_superblock'],
  ];
  for (const [name, w, field] of bad)
    t.throws(
      () => parseVerityInfo(w as string),
      { code: 'ERR_INVALID_STORAGE', field: 'driverOptions', verityField: field },
      name,
    );
});

t.test('the verity table: data and hash on one device, hash tree after the superblock', async (t) => {
  t.same(verityTable(good, '7:3'), { params: `1 7:3 7:3 4096 4096 1024 1025 sha256 ${HASH} -`, sectors: 8192 });
  t.same(verityTable({ ...good, no_superblock: true, salt: 'ABCD', hashtype: 'SHA256' }, '254:16'), {
    params: `1 254:16 254:16 4096 4096 1024 1024 sha256 ${HASH} abcd`,
    sectors: 8192,
  });
  t.throws(() => verityTable(good, '/dev/vda'), { code: 'ERR_INVALID_STORAGE', verityField: 'data_dev' });
  t.throws(() => verityTable(good, '7:3 extra'), { code: 'ERR_INVALID_STORAGE', verityField: 'data_dev' });
  t.equal(verityDeviceName('/dev/vdb', good), `kata-verity-vdb-off4194304-${'a'.repeat(32)}`);
});

t.test(
  'a veritysetup image: the table we build is the one its header describes',
  { skip: !haveVeritysetup && 'veritysetup missing (apt-get install cryptsetup-bin)' },
  async (t) => {
    const { img, info } = verityImage(t);
    t.same(parseVerityInfo(word(info)), info);
    const { params, sectors } = verityTable(info, '7:0');
    t.equal(params, `1 7:0 7:0 4096 4096 1024 1025 sha256 ${info.hash} ${info.salt}`);
    t.equal(sectors, (1024 * 4096) / 512);
    // veritysetup verify checks the whole tree in user space (no device-mapper needed).
    const verify = (hash: string): number =>
      spawnSync('veritysetup', [
        'verify',
        `--hash-offset=${info.offset}`,
        `--data-blocks=${info.blocknum}`,
        img,
        img,
        hash,
      ]).status ?? -1;
    t.equal(verify(info.hash), 0, 'the root hash verifies');
    t.not(verify('0'.repeat(64)), 0, 'a wrong root hash does not');
  },
);

t.test(
  'dm-verity on block drivers, this machine',
  { skip: cannotMount || (!haveVeritysetup && 'veritysetup missing') },
  async (t) => {
    const storage = (source: string, mountPoint: string, info: unknown, extra: Partial<Storage> = {}): Storage => ({
      driver: 'blk',
      source,
      fstype: 'ext4',
      driverOptions: [typeof info === 'string' ? info : word(info)],
      mountPoint,
      ...extra,
    });

    t.test('malformed verity_info: ERR_INVALID_STORAGE before anything is touched', async (t) => {
      const root = scratchDir(t);
      const sb = new Sandbox({ allowedRoots: [root] });
      const before = mountSnapshot();
      const first = { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'first') };
      await t.rejects(sb.addStorages([first, storage('/dev/vda', join(root, 'v'), { ...good, hash: 'xyz' })]), {
        code: 'ERR_INVALID_STORAGE',
        verityField: 'hash',
      });
      await t.rejects(
        sb.addStorages([
          first,
          storage('/dev/vda', join(root, 'v'), good, { driverOptions: [word(good), 'create_filesystem'] }),
        ]),
        {
          code: 'ERR_INVALID_MOUNT_OPTION',
        },
      );
      await t.rejects(sb.addStorages([storage('/dev/vda', join(root, 'v'), good, { fstype: 'bind' })]), {
        code: 'ERR_INVALID_MOUNT_OPTION',
      });
      t.equal(mountSnapshot(), before);
      t.equal(treeSnapshot(root), '');
    });

    t.test('ioctl error paths: no control node, a control node that is no device-mapper', async (t) => {
      const { img, info } = verityImage(t);
      const dev = attachImage(t, img, { readOnly: true });
      const root = scratchDir(t);
      const devRoot = scratchDir(t, 'kata-storage-dev-');
      const sb = new Sandbox({ allowedRoots: [root], devRoot });
      const before = mountSnapshot();
      const first = { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'first') };
      await t.rejects(sb.addStorages([first, storage(dev, join(root, 'v'), info)]), {
        code: 'ENOENT',
        syscall: 'open',
        path: join(devRoot, 'mapper', 'control'),
      });
      mkdirSync(join(devRoot, 'mapper'));
      closeSync(openSync(join(devRoot, 'mapper', 'control'), 'w'));
      await t.rejects(sb.addStorages([first, storage(dev, join(root, 'v'), info)]), {
        code: 'ENOTTY',
        syscall: 'ioctl(DM_DEV_CREATE)',
      });
      t.equal(mountSnapshot(), before, 'nothing mounted');
      t.equal(treeSnapshot(root), '', 'no directory left');
      t.same(treeSnapshot(devRoot), 'd mapper 755\nf mapper/control 644', 'no device node left');
    });

    const noDm =
      !existsSync('/dev/mapper/control') &&
      'this kernel has no device-mapper (/dev/mapper/control absent); the QEMU guest scenario proves it';
    t.test(
      'a verity device mounts read-only and reads; a wrong root hash fails; all removed',
      { skip: noDm },
      async (t) => {
        const { img, info } = verityImage(t);
        const root = scratchDir(t);
        const sb = new Sandbox({ allowedRoots: [root] });
        const dev = attachImage(t, img, { readOnly: true });
        const mp = join(root, 'v');
        const before = mountSnapshot();
        await sb.addStorages([storage(dev, mp, info)], { containerId: 'c' });
        t.equal(readFileSync(join(mp, 'hello'), 'utf8'), 'verified');
        const node = join('/dev/mapper', verityDeviceName(dev, info));
        t.equal(deviceNumber(node).type, 'block');
        await sb.removeContainer('c');
        t.equal(mountSnapshot(), before);
        t.notOk(existsSync(node), 'device removed');
        await t.rejects(sb.addStorages([storage(dev, mp, { ...info, hash: '0'.repeat(64) })], { containerId: 'c' }));
        t.equal(mountSnapshot(), before);
        t.notOk(existsSync(node));
      },
    );
  },
);
