import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../lib/cli';
import { umountSync } from '../lib/index';
import { cannotMount, mountSnapshot, scratchDir } from './helpers/mountinfo';

/** The CLI in-process (spawning a TypeScript child per command is too slow on a shared machine). */
async function cli(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const status = await run(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { status, stdout: out.join('\n'), stderr: err.join('\n') };
}

t.test('the bin entry point runs', async (t) => {
  const r = spawnSync(process.execPath, [...process.execArgv, join(__dirname, '..', 'lib', 'cli.ts'), 'parse-options', 'ro'], {
    encoding: 'utf8',
    timeout: 100000,
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
  });
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { flagNames: 'RDONLY' });
});

t.test('usage and parse-options', async (t) => {
  const help = await cli('help');
  t.equal(help.status, 0);
  t.match(help.stderr, /apply <storages.json>/);
  t.equal((await cli('bogus')).status, 2);
  const p = await cli('parse-options', 'rbind,rshared', 'ro', 'size=1m');
  t.equal(p.status, 0);
  t.match(JSON.parse(p.stdout), { data: 'size=1m', flagNames: 'RDONLY|BIND|REC', propagationNames: 'REC|SHARED' });
  const bad = await cli('parse-options', 'loop');
  t.equal(bad.status, 1);
  t.match(bad.stderr, /ERR_INVALID_MOUNT_OPTION/);
});

t.test('resolve-pci through a sysfs tree', async (t) => {
  const sys = scratchDir(t, 'kata-storage-sys-');
  mkdirSync(join(sys, 'devices', 'pci0000:00', '0000:00:02.0', 'pci_bus', '0000:01'), { recursive: true });
  mkdirSync(join(sys, 'devices', 'pci0000:00', '0000:00:02.0', '0000:01:03.0', 'virtio4', 'block', 'vdz'), { recursive: true });
  const r = await cli('resolve-pci', '02/03', '--sysfs', sys, '--dev', '/devroot', '--timeout', '100');
  t.equal(r.stderr, '');
  t.equal(r.stdout.trim(), '/devroot/vdz');
  t.equal((await cli('resolve-pci')).status, 2);
  t.match((await cli('resolve-pci', 'zz')).stderr, /ERR_INVALID_PCI_PATH/);
});

t.test('apply and demo', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const before = mountSnapshot();
  const file = join(root, 'storages.json');
  writeFileSync(
    file,
    JSON.stringify({
      storages: [
        { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: ['size=1m'], mount_point: join(root, 'shm') },
        { driver: 'local', source: 'local', fstype: 'local', options: ['mode=0700'], mount_point: join(root, 'dir') },
      ],
    }),
  );
  const r = await cli('apply', file, '--root', root, '--container', 'c');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /added 2 storage\(s\)/);
  t.match(r.stdout, /shm\s+ephemeral\s+1\s+tmpfs tmpfs/);
  t.match(r.stdout, /dir\s+local\s+1\s+\(directory, no mount\)/);
  t.match(r.stdout, /released in/);
  t.equal(mountSnapshot(), before, 'apply released what it added');
  const kept = await cli('apply', file, '--root', root, '--keep');
  t.equal(kept.status, 0);
  t.notMatch(kept.stdout, /released/);
  umountSync(join(root, 'shm'));
  const bad = await cli('apply', file, '--root', '/elsewhere');
  t.equal(bad.status, 1);
  t.match(bad.stderr, /ERR_INVALID_STORAGE/);
  t.equal((await cli('apply')).status, 2);
  writeFileSync(file, '{"x":1}');
  t.match((await cli('apply', file)).stderr, /expected an array/);
  t.match((await cli('apply', file, '--root')).stderr, /--root needs a value/);

  const demo = await cli('demo');
  t.equal(demo.status, 0, demo.stderr);
  t.match(demo.stdout, /step 3: container B/);
  t.match(demo.stdout, /sandbox\/disks\/data\s+blk\s+2\s+ext4 \/dev\/loop\d+/, 'blk shared by both containers');
  t.match(demo.stdout, /left behind: nothing/);
  t.equal(mountSnapshot(), before, 'the demo left nothing mounted');
});
