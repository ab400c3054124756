// `kata-storage plan` as a process: the table, --json, the flags, and a bad spec's exit status; and
// the planner's subPath views of an emptyDir, planned and then mounted for real.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from '../../lib/index';
import { planContainer, type HostVolume } from '../../lib/runtime/index';
import { inProcess } from '../helpers/cli';
import { cannotMount, mountSnapshot, mountsUnder, scratchDir } from '../helpers/mountinfo';

const cliPath = join(__dirname, '..', '..', 'lib', 'cli.ts');

/**
 * kata-storage as a process (lib/cli.ts through tap's TypeScript loader). Each spawn transpiles the
 * CLI anew, so the cases that need no process of their own run in-process (../helpers/cli).
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

  // A flag value Kata does not know is bad usage (exit 2); the same value in the settings file is
  // the settings' own refusal (exit 1, with its path).
  const bad = kataStorage('plan', config, '--shared-fs', 'nfs');
  t.equal(bad.status, 2);
  t.match(bad.stderr, /kata-storage plan: --shared-fs must be one of 'virtio-fs', 'virtio-9p', 'none', got 'nfs'/);
  const nfsSettings = join(bundle, 'nfs.json');
  writeFileSync(nfsSettings, JSON.stringify({ sharedFs: 'nfs' }));
  const badFile = await inProcess('plan', config, '--settings', nfsSettings);
  t.equal(badFile.status, 1);
  t.match(badFile.stderr, /ERR_INVALID_RUNTIME_SETTINGS: sharedFs: must be one of/);
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
  t.match(missing.stderr, /^kata-storage plan: ENOENT: no such file or directory, open '.*nope.json'$/);
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
  t.match(help.stdout, /--shared-fs virtio-fs\|virtio-9p\|none\s+the sandbox's shared filesystem/);
  t.equal(help.stderr, '');
});

t.test('--shm-size takes a Kubernetes quantity, each form of it, as bytes', async (t) => {
  const bundle = mkdtempSync(join(tmpdir(), 'kata-storage-plan-'));
  t.teardown(() => rmSync(bundle, { recursive: true, force: true }));
  const config = join(bundle, 'config.json');
  writeFileSync(config, JSON.stringify({ ociVersion: '1.0.2', root: { path: 'rootfs' } }));
  const shmOf = async (size: string): Promise<string | undefined> => {
    const r = await inProcess('plan', config, '--shm-size', size, '--json');
    t.equal(r.status, 0, `${size}: ${r.stderr}`);
    const plan = JSON.parse(r.stdout) as { sandbox: { storages: { source: string; options: string[] }[] } };
    return plan.sandbox.storages.find((s) => s.source === 'shm')?.options.find((o) => o.startsWith('size='));
  };
  const forms: [string, number][] = [
    ['67108864', 67108864],
    ['64Mi', 64 * 2 ** 20],
    ['64M', 64e6], // decimal, as Kubernetes reads M
    ['65536Ki', 64 * 2 ** 20],
    ['64k', 64000],
    ['0.5Gi', 2 ** 29],
    ['1.5G', 1.5e9],
    ['.5Mi', 2 ** 19],
    ['64.', 64],
    ['5e8', 5e8],
    ['5E8', 5e8],
    ['+1Gi', 2 ** 30],
    ['64000000000m', 64e6], // milli-bytes, whole
    ['1500m', 2], // 1.5 bytes, rounded up as Quantity.Value() rounds
    ['1Ti', 2 ** 40],
    ['1P', 1e15],
  ];
  for (const [text, bytes] of forms) t.equal(await shmOf(text), `size=${bytes}`, text);
  t.equal(await shmOf('0'), undefined, '0: no sandbox shm');
  for (const text of ['64MB', '64 Mi', 'M', '', '-1Mi', '1.2.3', '0x40', '64mi', '1Ei', '1e16', '64Mi ']) {
    const r = await inProcess('plan', config, `--shm-size=${text}`);
    t.equal(r.status, 2, `'${text}'`);
    t.match(r.stderr, /--shm-size must be a Kubernetes quantity of bytes/, `'${text}'`);
    t.equal(r.stdout, '');
  }
});

t.test('one emptyDir, two storages: a subPath view planned inside the emptyDir the guest makes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kata-storage-subpath-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pod = '/var/lib/kubelet/pods/7b4c0e9a-5f1d-4c2e-9a43-2f0f6c1d8e11';
  const emptyDir = `${pod}/volumes/kubernetes.io~empty-dir/workdir`;
  // kubelet's bind of <emptyDir>/app for the main container's volumeMounts[0].
  const subPathSource = `${pod}/volume-subpaths/workdir/main/0`;
  const specOf = (name: string, source: string, destination: string): string => {
    mkdirSync(join(dir, name), { recursive: true });
    const file = join(dir, name, 'config.json');
    writeFileSync(
      file,
      JSON.stringify({
        ociVersion: '1.0.2',
        root: { path: 'rootfs' },
        mounts: [{ destination, type: 'bind', source, options: ['rbind', 'rprivate', 'rw'] }],
      }),
    );
    return file;
  };
  const init = specOf('init', emptyDir, '/work');
  const main = specOf('main', subPathSource, '/home/work/workdir');
  const settingsFile = (volumes: Record<string, unknown>, extra: Record<string, unknown> = {}): string => {
    const file = join(dir, `settings-${Math.random().toString(16).slice(2)}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        sandboxId: 'pod',
        guestSharedDir: join(dir, 'guest', 'shared'),
        guestSandboxDir: join(dir, 'guest', 'sandbox'),
        volumes,
        ...extra,
      }),
    );
    return file;
  };
  type Plan = {
    container: {
      storages: { driver: string; fstype: string; mountPoint: string; options: string[] }[];
      spec: { mounts: { destination: string; type: string; source: string }[] };
      hostActions: { action: string }[];
      warnings: { code: string; path: string; value: string; message: string }[];
    };
  };
  const planOf = async (spec: string, id: string, settings: string): Promise<Plan> => {
    const r = await inProcess('plan', spec, '--container', id, '--settings', settings, '--json');
    t.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Plan;
  };
  const eph = join(dir, 'guest', 'sandbox', 'ephemeral', 'workdir');

  // Memory emptyDir: both containers get the one tmpfs; main's view is <tmpfs>/app.
  const memory = settingsFile({
    [emptyDir]: { fstype: 'tmpfs', options: ['rw', 'size=1m'], gid: 2000 },
    [subPathSource]: { subPathOf: emptyDir, subPath: 'app' },
  });
  const initPlan = await planOf(init, 'init', memory);
  const mainPlan = await planOf(main, 'main', memory);
  t.same(initPlan.container.storages, [
    { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: ['fsgid=2000', 'size=1m'], mountPoint: eph },
  ]);
  t.same(mainPlan.container.storages, [
    { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: ['fsgid=2000', 'size=1m'], mountPoint: eph },
    {
      driver: 'local',
      source: 'local',
      fstype: 'local',
      options: ['mode=0777', 'fsgid=2000'],
      driverOptions: ['keep-content'],
      mountPoint: join(eph, 'app'),
    },
  ]);
  t.same(mainPlan.container.spec.mounts, [
    { destination: '/home/work/workdir', type: 'bind', source: join(eph, 'app'), options: ['rbind', 'rprivate', 'rw'] },
  ]);
  t.same(mainPlan.container.warnings, []);
  t.notOk(
    mainPlan.container.hostActions.some((a) => a.action === 'share' && JSON.stringify(a).includes('volume-subpaths')),
    'the subPath source is not shared from the host',
  );

  // Disk emptyDir: the local directory under the sandbox's rootfs, the view a directory in it.
  const disk = settingsFile({ [subPathSource]: { subPathOf: emptyDir, subPath: 'logs/app' } });
  const local = join(dir, 'guest', 'shared', 'pod', 'rootfs', 'local', 'workdir');
  const diskMain = await planOf(main, 'main', disk);
  t.same(
    diskMain.container.storages.map((s) => [s.driver, s.mountPoint]),
    [
      ['local', local],
      ['local', join(local, 'logs', 'app')],
    ],
  );
  t.equal(diskMain.container.spec.mounts[0]!.source, join(local, 'logs', 'app'));
  t.equal((await planOf(init, 'init', disk)).container.spec.mounts[0]!.source, local);

  // Without subPathOf, or of a hugetlbfs emptyDir: planned as Kata plans it (a host share), and
  // the plan says so.
  for (const [settings, why] of [
    [settingsFile({ [emptyDir]: { fstype: 'tmpfs' } }), /whose volume the settings do not name/],
    [
      settingsFile({
        [emptyDir]: { fstype: 'hugetlbfs', options: ['pagesize=2M'] },
        [subPathSource]: { subPathOf: emptyDir, subPath: 'app' },
      }),
      /of a hugetlbfs emptyDir .*, which is planned in the guest only whole/,
    ],
  ] as const) {
    const kata = await planOf(main, 'main', settings);
    t.same(kata.container.storages, []);
    t.match(kata.container.spec.mounts[0]!.source, /\/shared\/main-[0-9a-f]{16}-workdir$/);
    t.match(kata.container.hostActions, [
      { action: 'share', for: 'root.path' },
      { action: 'share', source: subPathSource, for: 'mounts[0]' },
    ]);
    t.equal(kata.container.warnings.length, 1);
    t.match(kata.container.warnings[0], {
      code: 'SUBPATH_SHARED_FROM_HOST',
      path: 'mounts[0].source',
      value: subPathSource,
      message: why,
    });
    const table = await inProcess('plan', main, '--container', 'main', '--settings', settings);
    t.match(
      table.stdout,
      /\nwarnings\n {2}SUBPATH_SHARED_FROM_HOST: mounts\[0\]\.source: .*volume-subpaths\/workdir\/main\/0 is a kubelet subPath view/,
    );
  }
  // A disk emptyDir shared from the host (disableGuestEmptyDir): both see the host's; no warning.
  const hostDisk = settingsFile(
    { [subPathSource]: { subPathOf: emptyDir, subPath: 'app' } },
    { disableGuestEmptyDir: true },
  );
  const shared = await planOf(main, 'main', hostDisk);
  t.same(shared.container.warnings, []);
  t.match(shared.container.hostActions, [
    { action: 'share', for: 'root.path' },
    { action: 'share', source: subPathSource, for: 'mounts[0]' },
  ]);

  // What the settings refuse: one key without the other, a subPath leaving the volume, a typo.
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ subPath: 'app' }, /subPath: needs subPathOf too/],
    [{ subPathOf: emptyDir }, /subPathOf: needs subPath too/],
    [{ subPathOf: emptyDir, subPath: '../x' }, /subPath: must be a relative, normalized path inside the volume/],
    [{ subPathOf: emptyDir, subPath: '/app' }, /subPath: must be a relative/],
    [{ subPathOf: emptyDir, subPath: 'a//b' }, /subPath: must be a relative/],
    [{ subPathOf: 'volumes/x', subPath: 'app' }, /subPathOf: must be the volume's absolute, normalized host path/],
    [{ subpathOf: emptyDir, subPath: 'app' }, /subpathOf: is not a volume property/],
  ];
  for (const [volume, re] of refused) {
    const r = await inProcess('plan', main, '--settings', settingsFile({ [subPathSource]: volume }));
    t.equal(r.status, 1, JSON.stringify(volume));
    t.match(r.stderr, /ERR_INVALID_RUNTIME_SETTINGS: volumes\[".*volume-subpaths\/workdir\/main\/0"\]\./);
    t.match(r.stderr, re);
  }
});

/**
 * A pod with one emptyDir, for memory and for disk: `whole` mounts it whole, `view` through a
 * kubelet subPath bind of `app` in it, both planned for a guest under `dir/<medium>`.
 */
function subPathPods(dir: string, uid: string, whole: string) {
  const pod = `/var/lib/kubelet/pods/${uid}`;
  const emptyDir = `${pod}/volumes/kubernetes.io~empty-dir/workdir`;
  const subPathSource = `${pod}/volume-subpaths/workdir/main/0`;
  const media: [string, Record<string, HostVolume>][] = [
    ['memory', { [emptyDir]: { fstype: 'tmpfs', options: ['size=1m'] } }],
    ['disk', {}],
  ];
  const mount = (source: string, destination: string) => ({
    ociVersion: '1.0.2',
    root: { path: '/bundle/rootfs' },
    mounts: [{ destination, type: 'bind', source, options: ['rbind', 'rw'] }],
  });
  return media.map(([medium, volumes]) => {
    const guest = join(dir, medium);
    const settings = {
      sandboxId: 'pod',
      guestSharedDir: join(guest, 'shared'),
      guestSandboxDir: join(guest, 'sandbox'),
      volumes: { ...volumes, [subPathSource]: { subPathOf: emptyDir, subPath: 'app' } },
    };
    return {
      medium,
      guest,
      whole: planContainer(whole, mount(emptyDir, '/work'), settings),
      view: planContainer('main', mount(subPathSource, '/home/work/workdir'), settings),
    };
  });
}

t.test(
  'one emptyDir, two storages, applied: the init container writes, the main container reads',
  { skip: cannotMount },
  async (t) => {
    const dir = scratchDir(t, 'kata-storage-subpath-');
    for (const { medium, guest, whole: initPlan, view: mainPlan } of subPathPods(
      dir,
      '0d1f3a52-77c4-4b0b-8d7e-5b2a9f6c0e21',
      'init',
    )) {
      t.same(mainPlan.warnings, []);
      const before = mountSnapshot();
      const sandbox = new Sandbox({ allowedRoots: [guest] });
      try {
        await sandbox.addStorages(initPlan.storages, { containerId: 'init' });
        // The init container writes through its mount of the whole emptyDir.
        const initView = initPlan.spec.mounts![0]!.source!;
        mkdirSync(join(initView, 'app'));
        writeFileSync(join(initView, 'app', '999.log'), 'from init');
        await sandbox.addStorages(mainPlan.storages, { containerId: 'main' });
        const mainView = mainPlan.spec.mounts![0]!.source!;
        t.equal(readFileSync(join(mainView, '999.log'), 'utf8'), 'from init', `${medium}: main sees what init wrote`);
        writeFileSync(join(mainView, 'out'), 'from main');
        t.equal(readFileSync(join(initView, 'app', 'out'), 'utf8'), 'from main', `${medium}: and init sees main's`);
        const mounts = mountsUnder(guest);
        t.equal(mounts.length, medium === 'memory' ? 1 : 0, `${medium}: one tmpfs (or none), not two`);
        if (medium === 'memory') t.equal(mounts[0]!.fstype, 'tmpfs');
        await sandbox.removeContainer('init');
        t.equal(readFileSync(join(mainView, '999.log'), 'utf8'), 'from init', `${medium}: still there for main`);
        await sandbox.removeContainer('main');
      } finally {
        await sandbox.destroy();
      }
      t.equal(mountSnapshot(), before, `${medium}: nothing left mounted`);
    }
  },
);

t.test(
  'a subPath view the main container made keeps its data when that container goes and comes back',
  { skip: cannotMount },
  async (t) => {
    const dir = scratchDir(t, 'kata-storage-subpath-keep-');
    // A sidecar holds the whole emptyDir; the main container's subPath directory is made by the
    // package (nobody wrote it before), so its release is the one that could delete the data.
    for (const { medium, guest, whole: sidecar, view: main } of subPathPods(
      dir,
      '5b0c6e0e-3f7d-4a62-9d0a-0c2f4f8e9a11',
      'sidecar',
    )) {
      const before = mountSnapshot();
      const sandbox = new Sandbox({ allowedRoots: [guest] });
      try {
        await sandbox.addStorages(sidecar.storages, { containerId: 'sidecar' });
        await sandbox.addStorages(main.storages, { containerId: 'main' });
        const mainView = main.spec.mounts![0]!.source!;
        writeFileSync(join(mainView, 'state'), 'kept');
        const mountsBefore = mountsUnder(guest);
        await sandbox.removeContainer('main');
        const sidecarView = sidecar.spec.mounts![0]!.source!;
        t.equal(readFileSync(join(sidecarView, 'app', 'state'), 'utf8'), 'kept', `${medium}: the emptyDir keeps it`);
        t.same(mountsUnder(guest), mountsBefore, `${medium}: the emptyDir's mounts are untouched`);
        await sandbox.addStorages(main.storages, { containerId: 'main-restarted' });
        t.equal(readFileSync(join(mainView, 'state'), 'utf8'), 'kept', `${medium}: the restarted container sees it`);
        await sandbox.removeContainer('main-restarted');
        await sandbox.removeContainer('sidecar');
        t.equal(sandbox.storages().size, 0, `${medium}: nothing held`);
        t.notOk(existsSync(sidecarView), `${medium}: the emptyDir went with its last container, data and all`);
      } finally {
        await sandbox.destroy();
      }
      t.equal(mountSnapshot(), before, `${medium}: nothing left mounted`);
    }
  },
);
