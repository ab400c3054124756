// `kata-storage plan` as a process: the table, --json, the flags, and a bad spec's exit status.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inProcess } from './helpers/cli';

const cliPath = join(__dirname, '..', 'lib', 'cli.ts');

/**
 * kata-storage as a process (lib/cli.ts through tap's TypeScript loader). Each spawn transpiles the
 * CLI anew, so the cases that need no process of their own run in-process (./helpers/cli).
 */
function kataStorage(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [...process.execArgv, cliPath, ...args], {
    encoding: 'utf8',
    timeout: 100000,
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
  });
}

t.test('kata-storage plan <config.json>', async (t) => {
  const bundle = mkdtempSync(join(tmpdir(), 'kata-storage-plan-'));
  t.teardown(() => rmSync(bundle, { recursive: true, force: true }));
  const config = join(bundle, 'config.json');
  const secret = '/var/lib/kubelet/pods/u/volumes/kubernetes.io~secret/token';
  writeFileSync(
    config,
    JSON.stringify({
      ociVersion: '1.0.2-dev',
      root: { path: 'rootfs', readonly: true },
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        {
          destination: '/dev/shm',
          type: 'tmpfs',
          source: 'shm',
          options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
        },
        { destination: '/var/run/secrets/token', type: 'bind', source: secret, options: ['rbind', 'rprivate', 'ro'] },
        { destination: '/data', type: 'bind', source: '/dev/sdb', options: ['rbind', 'rprivate', 'rw'] },
      ],
    }),
  );
  const settings = join(bundle, 'settings.json');
  writeFileSync(
    settings,
    JSON.stringify({
      sandboxId: 'pod',
      blockDevices: { '/dev/sdb': { pciPath: '02/03', scsiAddr: '0:1', fstype: 'ext4' } },
    }),
  );

  // The spec with the settings file, for container app.
  const planApp = ['plan', config, '--settings', settings, '--container', 'app'];
  const table = kataStorage(...planApp, '--shm-size', '67108864', '--block-device-driver', 'virtio-blk');
  t.equal(table.status, 0, table.stderr);
  t.equal(table.stderr, '');
  const lines = table.stdout.split('\n');
  t.match(lines[0], /^sandbox storages/);
  t.match(table.stdout, /virtio-fs +kataShared +virtiofs +\/run\/kata-containers\/shared\/containers/);
  t.match(
    table.stdout,
    /ephemeral +shm +tmpfs +\/run\/kata-containers\/sandbox\/shm +noexec,nosuid,nodev,mode=1777,size=67108864/,
  );
  t.match(table.stdout, /blk +02\/03 +ext4 +\/run\/kata-containers\/sandbox\/storage\/MDIvMDM= +rw/);
  t.match(table.stdout, /\/dev\/shm +bind +\/run\/kata-containers\/sandbox\/shm +rbind/);
  t.match(
    table.stdout,
    /\/var\/run\/secrets\/token +bind +\/run\/kata-containers\/shared\/containers\/watchable\/app-[0-9a-f]{16}-token +rbind,rprivate,ro/,
  );
  t.match(
    table.stdout,
    /watchable-bind +\/run\/kata-containers\/shared\/containers\/app-[0-9a-f]{16}-token +bind +\/run\/kata-containers\/shared\/containers\/watchable\/app-/,
  );
  t.match(table.stdout, /container app mounts \(root \/run\/kata-containers\/shared\/containers\/app\/rootfs\)/);
  t.match(table.stdout, new RegExp(`share +root.path +${bundle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/rootfs`));
  t.match(table.stdout, /share \(ro\) +mounts\[2\]/);
  t.match(table.stdout, /attach-block-device +mounts\[3\] +\/dev\/sdb +blk 02\/03/);

  const json = await inProcess(...planApp, '--shared-fs', 'virtio-9p', '--json');
  t.equal(json.status, 0, json.stderr);
  const out = JSON.parse(json.stdout) as {
    containerId: string;
    sandbox: { storages: { driver: string }[] };
    container: {
      storages: { driver: string; source: string }[];
      spec: { mounts: { destination: string; source: string }[] };
    };
  };
  t.equal(out.containerId, 'app');
  t.same(
    out.sandbox.storages.map((s) => s.driver),
    ['9p'],
  );
  t.same(
    out.container.storages.map((s) => s.driver),
    ['watchable-bind', 'scsi'],
  );
  t.equal(out.container.storages[1]!.source, '0:1', 'the default block driver is virtio-scsi');
  t.equal(
    out.container.spec.mounts.find((m) => m.destination === '/dev/shm')!.source,
    'shm',
    'no sandbox shm: a tmpfs of its own',
  );

  const bad = kataStorage('plan', config, '--shared-fs', 'nfs');
  t.equal(bad.status, 1);
  t.match(bad.stderr, /ERR_INVALID_RUNTIME_SETTINGS: sharedFs: must be one of/);
  // shared_fs=none: the rootfs must be a disk; the secret is copied in.
  const noneSettings = join(bundle, 'none.json');
  writeFileSync(
    noneSettings,
    JSON.stringify({
      blockDevices: { [join(bundle, 'rootfs')]: { scsiAddr: '0:0', fstype: 'ext4' }, '/dev/sdb': { scsiAddr: '0:1' } },
    }),
  );
  const none = await inProcess('plan', config, '--settings', noneSettings, '--shared-fs', 'none', '--container', 'app');
  t.equal(none.status, 0, none.stderr);
  t.match(none.stdout, /scsi +0:0 +ext4 +\/run\/kata-containers\/shared\/containers\/app\n/);
  t.match(
    none.stdout,
    /copy +mounts\[2\] +\/var\/lib\/kubelet\/pods\/u\/volumes\/kubernetes.io~secret\/token +guest \/run\/kata-containers\/shared\/containers\/app-[0-9a-f]{16}-token/,
  );
  t.match(none.stdout, /sandbox storages \(CreateSandbox\)\n {2}\(none\)/);
  // Without a device a /dev source is a host device node (Kata's isHostDevice): left as it is.
  const node = JSON.parse((await inProcess('plan', config, '--json')).stdout) as typeof out;
  t.equal(node.container.spec.mounts.find((m) => m.destination === '/data')!.source, '/dev/sdb');
  // Known to be a block device (stat), but not attached: refused.
  const statOnly = join(bundle, 'stat-only.json');
  writeFileSync(statOnly, JSON.stringify({ volumes: { '/dev/sdb': { kind: 'block' } } }));
  const noDevice = await inProcess('plan', config, '--settings', statOnly);
  t.equal(noDevice.status, 1);
  t.match(
    noDevice.stderr,
    /ERR_BLOCK_DEVICE_NOT_ATTACHED: mounts\[3\]\.source: is a block device but the runtime attached none/,
  );
  const missing = await inProcess('plan', join(bundle, 'nope.json'));
  t.equal(missing.status, 1);
  t.match(missing.stderr, /ERR_INVALID_SPEC: config.json: cannot be read as JSON/);
  // Usage errors are the command line's (exit 2, named); help is on stdout.
  const noFile = await inProcess('plan');
  t.equal(noFile.status, 2);
  t.match(noFile.stderr, /kata-storage plan: missing <config.json>/);
  const typo = await inProcess('plan', config, '--shared', 'virtio-9p');
  t.equal(typo.status, 2);
  t.match(typo.stderr, /kata-storage plan: Unknown option '--shared'/);
  t.equal(typo.stdout, '');
  t.match((await inProcess('help')).stdout, /\n {2}plan +plan a container from an OCI spec/);
  const help = await inProcess('plan', '--help');
  t.equal(help.status, 0);
  t.match(help.stdout, /^usage: kata-storage plan <config.json> \[options\]/);
  t.match(help.stdout, /--shared-fs virtio-fs\|virtio-9p\|none +the sandbox's shared filesystem/);
  t.equal(help.stderr, '');
});
