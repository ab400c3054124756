// The command line as a user meets it: a real process (dist/cli.js, as npm's bin links it) for
// exit codes and which stream says what, and in-process runs (same code, faster) for the commands
// that mount, checked against /proc/self/mountinfo.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, packageRoot as root } from '../helpers/build';
import { inProcess as cli } from '../helpers/cli';
import { cannotMount, mountSnapshot, mountsUnder, scratchDir } from '../helpers/mountinfo';
import { treeSnapshot } from '../helpers/tree';

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
    t.match(
      r.stdout,
      /\nexample:\n {2}kata-storage apply storages.json --keep && kata-storage release storages.json\n$/,
    );
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
  // Each command's help shows one example; those that read input show its format.
  for (const c of COMMANDS) {
    const help = (await cli(c, '--help')).stdout;
    t.match(help, /\nexample:\n {2}(unshare .* )?kata-storage \S+/, `${c} --help shows an example`);
  }
  // Help is read in an 80-column terminal: every line of every help fits, and a long example is
  // broken with a shell continuation, so it still pastes as one command.
  for (const args of [['--help'], ...COMMANDS.map((c) => [c, '--help']), ['help', '--help']]) {
    const wide = (await cli(...args)).stdout.split('\n').filter((l) => l.length > 80);
    t.same(wide, [], `${args.join(' ')}: no line over 80 columns`);
  }
  t.match((await cli('apply', '--help')).stdout, /\n {2}kata-storage apply storages\.json .* \\\n {4}\S/);
  for (const c of ['apply', 'release']) {
    t.match(
      (await cli(c, '--help')).stdout,
      /\ninput:\n {2}A JSON array of Kata Storage messages[^]*"mount_point"[^]*\noptions:/,
      c,
    );
  }
  t.match((await cli('plan', '--help')).stdout, /\ninput:\n {2}An OCI runtime spec \(config.json/);
  for (const args of [
    ['help', '--help'],
    ['help', '-h'],
  ]) {
    const r = proc(args);
    t.equal(r.status, 0, args.join(' '));
    t.match(
      r.stdout,
      /^usage: kata-storage help \[<command>\]\n[^]*\nexample:\n {2}kata-storage help apply/,
      args.join(' '),
    );
    t.equal(r.stderr, '', args.join(' '));
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
  // resolve-pci checks its argument through the addon: its absence fails the command, and is not
  // reported as bad usage.
  const pci = proc(['resolve-pci', '02/03'], env);
  t.equal(pci.status, 1, pci.stderr);
  t.equal(count(pci.stderr, 'ERR_NATIVE_LOAD'), 1, pci.stderr);
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
    [['parse-options'], /kata-storage parse-options: missing <option>/],
    // An argument the command cannot take is bad usage, with the library's reason.
    [['resolve-pci', 'zz'], /kata-storage resolve-pci: ERR_INVALID_PCI_PATH: .*'zz'/],
    // A value an option does not take is bad usage too, whichever command and option.
    [['apply', 'x.json', '--root', 'x'], /kata-storage apply: --root must be an absolute path, got 'x'/],
    [['apply', 'x.json', '--root', '/run/kata-containers/'], /--root must be normalized \("\/run\/kata-containers"\)/],
    [['apply', 'x.json', '--sysfs', 'sys'], /--sysfs must be an absolute path, got 'sys'/],
    [['release', 'x.json', '--root', 'run/../x'], /kata-storage release: --root must be an absolute path/],
    [['resolve-pci', '02', '--dev', 'dev'], /kata-storage resolve-pci: --dev must be an absolute path/],
    [
      ['plan', 'c.json', '--block-device-driver', 'virtio-bogus'],
      /kata-storage plan: --block-device-driver must be one of 'virtio-blk', 'virtio-scsi', .*, got 'virtio-bogus'/,
    ],
    [
      ['plan', 'c.json', '--shared-fs', 'nfs'],
      /--shared-fs must be one of 'virtio-fs', 'virtio-9p', 'none', got 'nfs'/,
    ],
    [['plan', 'c.json', '--shm-size', '64MB'], /--shm-size must be a Kubernetes quantity of bytes .*, got '64MB'/],
    [['plan', 'c.json', '--container', '../x'], /--container must be a name of letters, digits.*, got '\.\.\/x'/],
    [['plan', 'c.json', '--sandbox', 'a/b'], /--sandbox must be a non-empty name without "\/"/],
    [['help', 'apply', 'release'], /kata-storage help: unexpected argument 'release'/],
    [['help', '--bogus'], /kata-storage help: Unknown option '--bogus'/],
  ];
  for (const [args, re] of cases) {
    const r = proc(args);
    t.equal(r.status, 2, args.join(' '));
    t.match(r.stderr, re, args.join(' '));
    t.equal(r.stdout, '', args.join(' '));
  }
});

t.test('failures: exit 1, the error once with its code, the file named', async (t) => {
  const dir = scratchDir(t, 'kata-storage-cli-');
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"storages": [');
  // A file that is not JSON has the code a wrong storage in it would have, for apply and release.
  for (const command of ['apply', 'release']) {
    const r = proc([command, bad, '--root', dir]);
    t.equal(r.status, 1, command);
    t.match(r.stderr, new RegExp(`^kata-storage ${command}: ERR_INVALID_STORAGE: ${bad} is not valid JSON: `), command);
    t.equal(count(r.stderr, 'ERR_INVALID_STORAGE'), 1, command);
    // A file that is not there: Node's ENOENT with the path, once.
    const missing = proc([command, join(dir, 'none.json')]);
    t.equal(missing.status, 1, command);
    t.match(
      missing.stderr,
      new RegExp(`^kata-storage ${command}: ENOENT: no such file or directory, open '.*none.json'`),
    );
    t.equal(count(missing.stderr, 'ENOENT'), 1, missing.stderr);
  }
  // plan: the spec's and the settings' own codes, ENOENT for a missing file.
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ ociVersion: '1.0.2', root: { path: 'rootfs' } }));
  const badSpec = proc(['plan', bad]);
  t.equal(badSpec.status, 1);
  t.match(badSpec.stderr, /^kata-storage plan: ERR_INVALID_SPEC: config.json: .*bad.json is not valid JSON/);
  const badSettings = proc(['plan', config, '--settings', bad]);
  t.equal(badSettings.status, 1);
  t.match(
    badSettings.stderr,
    /^kata-storage plan: ERR_INVALID_RUNTIME_SETTINGS: settings: .*bad.json is not valid JSON/,
  );
  const noSpec = proc(['plan', join(dir, 'none.json')]);
  t.equal(noSpec.status, 1);
  t.match(noSpec.stderr, /^kata-storage plan: ENOENT: no such file or directory, open '.*none.json'/);
  const noSettings = proc(['plan', config, '--settings', join(dir, 'none.json')]);
  t.equal(noSettings.status, 1);
  t.match(noSettings.stderr, /^kata-storage plan: ENOENT: /);

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
  // Storages outside --root: apply and release refuse them alike (exit 1, the Sandbox's code and
  // words), before anything is touched, with the storages kept mounted by apply --keep in place.
  t.equal((await cli('apply', file, '--root', run, '--keep')).status, 0);
  const held = mountSnapshot();
  const heldTree = treeSnapshot(run);
  const refusals = await Promise.all(['apply', 'release'].map((c) => cli(c, file, '--root', '/elsewhere')));
  for (const [i, r] of refusals.entries()) {
    t.equal(r.status, 1, `${['apply', 'release'][i]} outside --root`);
    t.match(
      r.stderr,
      /^kata-storage (apply|release): ERR_INVALID_STORAGE: storage mountPoint is outside the allowed roots \(\/elsewhere\) \(got '.*\/sandbox\/shm'\)$/,
    );
    t.equal(r.stdout, '');
  }
  t.equal(refusals[0]!.stderr.replace('apply', 'release'), refusals[1]!.stderr, 'the same error');
  t.equal(mountSnapshot(), held, 'nothing unmounted or mounted');
  t.equal(treeSnapshot(run), heldTree, 'nothing created or removed');
  t.equal((await cli('release', file, '--root', run)).status, 0);
  t.equal(mountSnapshot(), before);

  writeFileSync(file, '{"x":1}');
  const shape = await cli('apply', file);
  t.equal(shape.status, 1);
  t.match(
    shape.stderr,
    /ERR_INVALID_STORAGE: .*storages.json: expected an array of storages or \{ "storages": \[\.\.\.\] \}/,
  );

  const demo = await cli('demo');
  t.equal(demo.status, 0, demo.stderr);
  t.match(demo.stdout, /step 3: container B/);
  t.match(demo.stdout, /sandbox\/disks\/data\s+blk\s+2\s+ext4 \/dev\/loop\d+/, 'blk shared by both containers');
  t.match(demo.stdout, /left behind: nothing/);
  t.equal(mountSnapshot(), before, 'the demo left nothing mounted');
});

t.test(
  'apply --keep twice: the second is refused before it mounts anything; release then works',
  { skip: cannotMount },
  async (t) => {
    const dir = scratchDir(t);
    const run = join(dir, 'run');
    mkdirSync(run);
    const file = join(dir, 'storages.json');
    const shm = join(run, 'sandbox', 'shm');
    const data = join(run, 'sandbox', 'data');
    writeFileSync(
      file,
      JSON.stringify([
        { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: ['size=1m'], mount_point: data },
        { driver: 'ephemeral', source: 'shm', fstype: 'tmpfs', options: ['size=1m'], mount_point: shm },
      ]),
    );
    const before = mountSnapshot();
    const tree = treeSnapshot(run);
    t.equal((await cli('apply', file, '--root', run, '--keep')).status, 0);
    const kept = mountSnapshot();
    t.equal(mountsUnder(run).length, 2, 'two tmpfs');
    writeFileSync(join(data, 'f'), 'written after the first apply');

    // The second run finds what the first left (here the second storage alone is still mounted,
    // as after a partial manual cleanup: any one is enough) and refuses without mounting anything.
    for (const leftOver of [2, 1]) {
      if (leftOver === 1) spawnSync('umount', [data]);
      const snapshot = mountSnapshot();
      const again = await cli('apply', file, '--root', run, '--keep');
      t.equal(again.status, 1, `${leftOver} left`);
      t.match(
        again.stderr,
        new RegExp(
          `^kata-storage apply: ERR_ALREADY_MOUNTED: ${leftOver === 2 ? data : shm} is already a mount point \\(left by an earlier apply --keep\\?\\): undo it with kata-storage release ${file} --root ${run}, or unmount it$`,
        ),
      );
      t.equal(again.stdout, '');
      t.equal(mountSnapshot(), snapshot, 'nothing mounted on top');
    }
    t.equal(mountsUnder(shm).length, 1, 'one mount at the mount point, not two');
    t.not(kept, before);

    const released = await cli('release', file, '--root', run);
    t.equal(released.status, 0, released.stderr);
    t.match(released.stdout, `unmounted ${shm}`);
    t.notMatch(released.stderr, /EBUSY/);
    t.equal(mountSnapshot(), before, 'release took everything down');
    rmSync(join(run, 'sandbox'), { recursive: true, force: true });
    t.equal(treeSnapshot(run), tree);
    // And after release, apply --keep works again.
    t.equal((await cli('apply', file, '--root', run, '--keep')).status, 0);
    t.equal((await cli('release', file, '--root', run)).status, 0);
    t.equal(mountSnapshot(), before);
  },
);

t.test(
  'a closed stdout (| head -1) ends quietly and still releases what apply mounted',
  { skip: cannotMount },
  async (t) => {
    const dir = scratchDir(t);
    const run = join(dir, 'run');
    mkdirSync(run);
    const file = join(dir, 'storages.json');
    writeFileSync(
      file,
      JSON.stringify(
        ['a', 'b', 'c'].map((n) => ({
          driver: 'ephemeral',
          source: 'tmpfs',
          fstype: 'tmpfs',
          options: ['size=1m'],
          mount_point: join(run, n),
        })),
      ),
    );
    const before = mountSnapshot();
    // The reader is gone before the first line is written: every write meets EPIPE.
    const child = spawn(process.execPath, [bin, 'apply', file, '--root', run], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const [code, signal] = (await once(child, 'close')) as [number | null, string | null];
    t.equal(signal, null, 'not killed');
    t.equal(code, 0, stderr);
    t.equal(stderr, '', 'nothing on stderr: no EPIPE trace');
    t.equal(mountSnapshot(), before, 'the tmpfs it mounted are released');

    // As a shell pipeline: head takes the first line and exits while apply still writes.
    const sh = spawnSync('sh', ['-c', `"${process.execPath}" "${bin}" apply "${file}" --root "${run}" | head -1`], {
      encoding: 'utf8',
    });
    t.equal(sh.status, 0);
    t.match(sh.stdout, /^added 3 storage\(s\) in [\d.]+ ms\n$/);
    t.equal(sh.stderr, '');
    t.equal(mountSnapshot(), before);
    t.equal(mountsUnder(run).length, 0);
  },
);

t.test(
  'examples/agent.js <requests.json>: the mount points under /run/kata-containers, or --root',
  { skip: cannotMount },
  async (t) => {
    const agent = join(root, 'examples', 'agent.js');
    const dir = scratchDir(t, 'kata-agent-req-');
    const requests = (base: string): string => {
      const file = join(dir, `requests-${base.replaceAll('/', '_')}.json`);
      writeFileSync(
        file,
        JSON.stringify([
          {
            method: 'CreateSandbox',
            request: {
              sandbox_id: 'pod',
              storages: [
                {
                  driver: 'ephemeral',
                  source: 'shm',
                  fstype: 'tmpfs',
                  options: ['size=1m'],
                  mount_point: `${base}/sandbox/shm`,
                },
              ],
            },
          },
          {
            method: 'CreateContainer',
            request: {
              container_id: 'app',
              storages: [
                { driver: 'local', source: 'local', fstype: 'local', mount_point: `${base}/sandbox/local/cache` },
              ],
            },
          },
          { method: 'RemoveContainer', request: { container_id: 'app' } },
          { method: 'DestroySandbox', request: {} },
        ]),
      );
      return file;
    };
    const before = mountSnapshot();
    // As Kata's runtime names them: under /run/kata-containers, the default root with a file. A
    // tmpfs on /run in a namespace of its own stands in for the guest's, so the host's /run is untouched.
    const kata = spawnSync(
      'unshare',
      [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        `mount -t tmpfs kata-example /run && exec "${process.execPath}" "${agent}" "${requests('/run/kata-containers')}"`,
      ],
      { encoding: 'utf8', cwd: root },
    );
    t.equal(kata.status, 0, kata.stderr);
    t.equal(kata.stderr, '');
    t.match(
      kata.stdout,
      /^CreateSandbox pod\n {4}created ephemeral sandbox\/shm\n {2}mounted: sandbox\/shm \(tmpfs\)\n/,
    );
    t.match(kata.stdout, /DestroySandbox\n {2}mounted: nothing\ndone: nothing left mounted\n$/);
    t.equal(mountSnapshot(), before);

    // --root names another root; it is left in place (only a directory the example made is removed).
    const guest = join(dir, 'guest');
    mkdirSync(guest);
    const own = spawnSync(process.execPath, [agent, requests(guest), '--root', guest], { encoding: 'utf8', cwd: root });
    t.equal(own.status, 0, own.stderr);
    t.match(own.stdout, /CreateContainer app\n {4}created local sandbox\/local\/cache\n/);
    t.match(own.stdout, /done: nothing left mounted\n$/);
    t.equal(mountSnapshot(), before);
    t.ok(existsSync(guest), '--root is not removed');

    const bad = spawnSync(process.execPath, [agent, '--root', 'guest'], { encoding: 'utf8', cwd: root });
    t.equal(bad.status, 2);
    t.match(
      bad.stderr,
      /^agent example: --root must be an absolute path, got 'guest'\nusage: node examples\/agent.js \[requests.json\] \[--root DIR\]/,
    );
    t.equal(bad.stdout, '');
  },
);
