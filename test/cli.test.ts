// The command line as a user meets it: a real process (dist/cli.js, as npm's bin links it) for
// exit codes and which stream says what, and in-process runs (same code, faster) for the commands
// that mount, checked against /proc/self/mountinfo.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, packageRoot as root } from './helpers/build';
import { inProcess as cli } from './helpers/cli';
import { cannotMount, mountSnapshot, scratchDir } from './helpers/mountinfo';
import { treeSnapshot } from './helpers/tree';

const bin = join(root, 'dist', 'cli.js');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

ensureBuilt();
// About forty node processes: seconds each on a loaded machine.
t.setTimeout(600000);

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** kata-storage as a process. */
function proc(args: string[], env: NodeJS.ProcessEnv = {}): Result {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    timeout: 100000,
    env: { ...process.env, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
}

const count = (s: string, sub: string): number => s.split(sub).length - 1;
const COMMANDS = ['demo', 'apply', 'release', 'parse-options', 'resolve-pci', 'plan'];

t.test('help: exit 0 on stdout for the program and every command, without running anything', async (t) => {
  for (const flag of ['--help', '-h']) {
    const r = proc([flag]);
    t.equal(r.status, 0, flag);
    t.match(r.stdout, /^usage: kata-storage <command>/);
    for (const c of COMMANDS) t.match(r.stdout, new RegExp(`\\n  ${c} `), `${flag} lists ${c}`);
    t.equal(r.stderr, '');
  }
  for (const c of COMMANDS) {
    for (const args of [
      [c, '--help'],
      [c, '-h'],
      ['help', c],
    ]) {
      const r = proc(args);
      t.equal(r.status, 0, args.join(' '));
      t.match(r.stdout, new RegExp(`^usage: kata-storage ${c}`), args.join(' '));
      t.equal(r.stderr, '', args.join(' '));
    }
  }
  const demo = proc(['demo', '--help']);
  t.notMatch(demo.stdout, /allowed root|step 1/, 'demo --help does not run the demo');
  t.match(
    proc(['parse-options', '--help']).stdout,
    /^usage: kata-storage parse-options/,
    '--help is not parsed as a mount option',
  );
});

t.test('--version and -V print the version', async (t) => {
  for (const flag of ['--version', '-V']) {
    const r = proc([flag]);
    t.equal(r.status, 0);
    t.equal(r.stdout, `${version}\n`);
    t.equal(r.stderr, '');
  }
});

t.test('help and --version work where the addon cannot load; commands that need it say why, once', async (t) => {
  const env = { KATA_STORAGE_ADDON: '/nonexistent/kata_storage.node' };
  t.equal(proc(['--help'], env).status, 0);
  t.equal(proc(['apply', '--help'], env).status, 0);
  t.equal(proc(['plan', '--help'], env).status, 0);
  // plan is pure TypeScript: it runs without the addon.
  const bundle = scratchDir(t, 'kata-storage-plan-');
  writeFileSync(
    join(bundle, 'config.json'),
    JSON.stringify({ ociVersion: '1.0.2', root: { path: 'rootfs' }, mounts: [] }),
  );
  const planned = proc(['plan', join(bundle, 'config.json'), '--container', 'app'], env);
  t.equal(planned.status, 0, planned.stderr);
  t.match(planned.stdout, /^sandbox storages \(CreateSandbox\)\n +DRIVER +SOURCE.*\n +virtio-fs +kataShared /);
  t.equal(planned.stderr, '');
  t.equal(proc(['-V'], env).stdout, `${version}\n`);
  const r = proc(['parse-options', 'ro'], env);
  t.equal(r.status, 1);
  t.equal(count(r.stderr, 'ERR_NATIVE_LOAD'), 1, r.stderr);
  t.equal(r.stdout, '');
});

t.test('bad usage names what was wrong, on stderr, with exit 2', async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /^usage: kata-storage <command>/],
    [['bogus'], /unknown command 'bogus'/],
    [['help', 'bogus'], /unknown command 'bogus'/],
    [['--bogus'], /unknown option '--bogus'/],
    [['apply', 'x.json', '--bogus'], /kata-storage apply: Unknown option '--bogus'/],
    [['apply', 'x.json', '--rot=/run'], /Unknown option '--rot'/],
    [['apply', 'x.json', '--root'], /--root <value>' argument missing|argument missing/],
    [['apply'], /kata-storage apply: missing <storages.json>/],
    [['apply', 'a.json', 'b.json'], /unexpected argument 'b.json'/],
    [['resolve-pci', '02', '--timeout', 'soon'], /--timeout must be a number of milliseconds, got 'soon'/],
    [['demo', 'now'], /unexpected argument 'now'/],
  ];
  for (const [args, re] of cases) {
    const r = proc(args);
    t.equal(r.status, 2, args.join(' '));
    t.match(r.stderr, re, args.join(' '));
    t.equal(r.stdout, '', args.join(' '));
  }
});

t.test('failures: exit 1, the error once, the file named', async (t) => {
  const dir = scratchDir(t, 'kata-storage-cli-');
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"storages": [');
  const r = proc(['apply', bad, '--root', dir]);
  t.equal(r.status, 1);
  t.match(r.stderr, `${bad} is not valid JSON`);
  const missing = proc(['apply', join(dir, 'none.json')]);
  t.equal(missing.status, 1);
  t.equal(count(missing.stderr, 'ENOENT'), 1, missing.stderr);
  t.match(missing.stderr, 'none.json');

  const parse = proc(['parse-options', 'loop']);
  t.equal(parse.status, 1);
  t.equal(count(parse.stderr, 'ERR_INVALID_MOUNT_OPTION'), 1, parse.stderr);

  // A device that never comes: the timeout is reported once (not 'ETIMEDOUT: ETIMEDOUT:').
  mkdirSync(join(dir, 'sys', 'devices', 'pci0000:00'), { recursive: true });
  const wait = proc(['resolve-pci', '05', '--sysfs', join(dir, 'sys'), '--timeout', '50']);
  t.equal(wait.status, 1);
  t.equal(count(wait.stderr, 'ETIMEDOUT'), 1, wait.stderr);
  t.match(wait.stderr, /no device after 50 ms waiting for virtio-blk disk at PCI path 05/);

  // A sysfs that does not exist fails at once, not after the (here 60 s) wait.
  const nosys = proc(['resolve-pci', '02', '--sysfs', '/nonexistent', '--timeout', '60000']);
  t.equal(nosys.status, 1);
  t.match(nosys.stderr, /ENOENT: no such file or directory, stat '\/nonexistent'/);
  t.ok(nosys.ms < 20000, `failed after ${nosys.ms.toFixed(0)} ms, not after the timeout`);
});

t.test('parse-options and resolve-pci', async (t) => {
  const p = await cli('parse-options', 'rbind,rshared', 'ro', 'size=1m');
  t.equal(p.status, 0);
  t.match(JSON.parse(p.stdout), { data: 'size=1m', flagNames: 'RDONLY|BIND|REC', propagationNames: 'REC|SHARED' });
  const sys = scratchDir(t, 'kata-storage-sys-');
  mkdirSync(join(sys, 'devices', 'pci0000:00', '0000:00:02.0', 'pci_bus', '0000:01'), { recursive: true });
  mkdirSync(join(sys, 'devices', 'pci0000:00', '0000:00:02.0', '0000:01:03.0', 'virtio4', 'block', 'vdz'), {
    recursive: true,
  });
  const r = await cli('resolve-pci', '02/03', `--sysfs=${sys}`, '--dev', '/devroot', '--timeout', '100');
  t.equal(r.stderr, '');
  t.equal(r.stdout.trim(), '/devroot/vdz');
  t.match((await cli('resolve-pci', 'zz')).stderr, /^kata-storage resolve-pci: ERR_INVALID_PCI_PATH: /);
});

t.test('apply, apply --keep then release, and the demo', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  const before = mountSnapshot();
  const file = join(dir, 'storages.json');
  const run = join(dir, 'run');
  mkdirSync(run);
  writeFileSync(
    file,
    JSON.stringify({
      storages: [
        {
          driver: 'ephemeral',
          source: 'tmpfs',
          fstype: 'tmpfs',
          options: ['size=1m'],
          mount_point: join(run, 'sandbox', 'shm'),
        },
        {
          driver: 'local',
          source: 'local',
          fstype: 'local',
          options: ['mode=0700'],
          mount_point: join(run, 'sandbox', 'dir'),
        },
      ],
    }),
  );
  const tree = treeSnapshot(run);
  const r = await cli('apply', file, `--root=${run}`, '--container', 'c');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /added 2 storage\(s\)/);
  t.match(r.stdout, /shm\s+ephemeral\s+1\s+tmpfs tmpfs/);
  t.match(r.stdout, /dir\s+local\s+1\s+\(directory, no mount\)/);
  t.match(r.stdout, /released in/);
  t.equal(mountSnapshot(), before, 'apply released what it added');

  const kept = await cli('apply', file, '--root', run, '--keep');
  t.equal(kept.status, 0);
  t.notMatch(kept.stdout, /released/);
  t.match(kept.stdout, `undo with: kata-storage release ${file} --root ${run}`);
  t.not(mountSnapshot(), before, 'apply --keep left the tmpfs mounted');
  const released = await cli('release', file, '--root', run);
  t.equal(released.status, 0, released.stderr);
  t.match(released.stdout, `unmounted ${join(run, 'sandbox', 'shm')}`);
  t.equal(mountSnapshot(), before, 'release unmounted what apply --keep left');
  t.equal(treeSnapshot(run), tree, 'and removed the directories it had made');
  // Content in a directory is never deleted: release keeps it and says so.
  t.equal((await cli('apply', file, '--root', run, '--keep')).status, 0);
  writeFileSync(join(run, 'sandbox', 'dir', 'data'), 'x');
  const kept2 = await cli('release', file, '--root', run);
  t.equal(kept2.status, 0, kept2.stderr);
  t.match(kept2.stdout, `kept ${join(run, 'sandbox', 'dir')} (not empty)`);
  t.equal(mountSnapshot(), before);
  t.equal(readFileSync(join(run, 'sandbox', 'dir', 'data'), 'utf8'), 'x');
  rmSync(join(run, 'sandbox'), { recursive: true });
  const again = await cli('release', file, '--root', run);
  t.equal(again.status, 0, 'releasing twice is harmless');
  t.match(again.stdout, /not mounted: /);
  t.equal((await cli('release', file, '--root', '/elsewhere')).status, 2, 'storages outside --root are refused');

  const bad = await cli('apply', file, '--root', '/elsewhere');
  t.equal(bad.status, 1);
  t.match(bad.stderr, /^kata-storage apply: ERR_INVALID_STORAGE: storage mountPoint .*outside the allowed roots/);
  writeFileSync(file, '{"x":1}');
  t.match((await cli('apply', file)).stderr, /expected an array/);

  const demo = await cli('demo');
  t.equal(demo.status, 0, demo.stderr);
  t.match(demo.stdout, /step 3: container B/);
  t.match(demo.stdout, /sandbox\/disks\/data\s+blk\s+2\s+ext4 \/dev\/loop\d+/, 'blk shared by both containers');
  t.match(demo.stdout, /left behind: nothing/);
  t.equal(mountSnapshot(), before, 'the demo left nothing mounted');
});
