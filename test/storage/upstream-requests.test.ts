// The requests Kata's runtimes really send and the OCI specs real runtimes really write
// (test/fixtures/upstream, see its README): each request is validated as sent, under Kata's own
// root, and then mounted for real with its mount points moved under a scratch root (the guest's
// /run/kata-containers), proving in /proc/self/mountinfo what happened and that release leaves
// nothing. What needs a hypervisor is driven as far as this kernel allows: virtio-fs and 9p reach
// the kernel (no such device here), a virtio-mmio disk is a loop device, and the storages that
// wait for a hot-plugged PCI or SCSI disk are validated and planned only. Each spec is planned.
import t from 'tap';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, defaultRegistry, effectiveMountApi, normalizeStorage, type KataStorage } from '../../lib/index';
import { validateStorage } from '../../lib/storage';
import {
  planContainer,
  planSandbox,
  type OciSpec,
  type RuntimeSettings,
  type ShareAction,
} from '../../lib/runtime/index';
import { attachLoop } from '../helpers/loop';
import { cannotMount, mountAt, mountSnapshot, scratchDir } from '../helpers/mountinfo';
import { rejection } from '../helpers/rejection';
import { treeSnapshot } from '../helpers/tree';

const FIXTURES = join(__dirname, '..', 'fixtures', 'upstream');
const load = <T>(name: string): T => JSON.parse(readFileSync(join(FIXTURES, name), 'utf8')) as T;
const KATA = '/run/kata-containers';

const createSandbox = load<Record<'virtio-fs' | 'virtio-fs-dax' | '9p', KataStorage[]>>('kata-go-create-sandbox.json');
const runtimeRs = load<KataStorage[]>('runtime-rs-get-storages.json');
const createContainer = load<{ sandboxId: string; containerId: string; storages: KataStorage[] }>(
  'kata-go-create-container.json',
);
const agentTestVolumes = load<KataStorage[]>('kata-go-agent-test-block-volumes.json');
const genpolicy = load<KataStorage[]>('genpolicy-storages.json');
const everyRequest: [string, KataStorage[]][] = [
  ['Go setupStorages (virtio-fs)', createSandbox['virtio-fs']],
  ['Go setupStorages (virtio-fs, DAX)', createSandbox['virtio-fs-dax']],
  ['Go setupStorages (9p)', createSandbox['9p']],
  ['runtime-rs get_storages', runtimeRs],
  ['Go createContainer', createContainer.storages],
  ['kata_agent_test.go block volumes', agentTestVolumes],
  ['genpolicy', genpolicy],
];

/** The request with every guest path under `guest` instead of /run/kata-containers (trailing '/' kept). */
function rebase(s: KataStorage, guest: string): KataStorage {
  const move = (p: string): string => (p.startsWith(`${KATA}/`) ? `${guest}${p.slice(KATA.length)}` : p);
  const out: KataStorage = { ...s, mount_point: move(s.mount_point) };
  if (s.driver === 'watchable-bind') out.source = move(s.source);
  return out;
}

t.test('every upstream request validates as sent, under Kata’s own root', async (t) => {
  const registry = defaultRegistry();
  for (const [name, storages] of everyRequest) {
    for (const raw of storages) {
      const s = normalizeStorage(raw);
      const { placement } = validateStorage(s, [KATA], false);
      registry.get(s.driver)!.validate?.({ ...s, placement } as never, { allowedRoots: [KATA] });
      t.notOk(s.mountPoint.endsWith('/'), `${name} ${raw.driver}: ${s.mountPoint} is the one spelling`);
      t.equal(placement.root, KATA, `${name} ${raw.driver}: beneath ${KATA}`);
    }
  }
  // Both runtimes send the share exactly so, and planSandbox now emits the same.
  for (const share of [createSandbox['virtio-fs'][0]!, createSandbox['9p'][0]!, runtimeRs[0]!]) {
    t.equal(share.mount_point, `${KATA}/shared/containers/`);
  }
  t.equal(planSandbox().storages[0]!.mountPoint, createSandbox['virtio-fs'][0]!.mount_point);
  // planSandbox is setupStorages: the same requests (proto3 omits the empty options list).
  const same = (s: unknown): unknown => {
    const n = normalizeStorage(s);
    return { ...n, options: n.options ?? [] };
  };
  t.same(planSandbox({ shmSize: 67108864 }).storages.map(same), createSandbox['virtio-fs'].map(same));
  t.same(planSandbox({ virtioFsCacheSize: 1024 }).storages.map(same), createSandbox['virtio-fs-dax'].map(same));
  t.same(planSandbox({ sharedFs: 'virtio-9p' }).storages.map(same), createSandbox['9p'].map(same));
});

t.test('CreateSandbox: the share as sent reaches the kernel, the shm mounts', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const guest = join(root, 'run', 'kata-containers');
  mkdirSync(guest, { recursive: true });
  const sandbox = new Sandbox({ allowedRoots: [guest] });
  const before = mountSnapshot();
  const tree = treeSnapshot(root);
  // No virtiofs or virtio transport here: the refusal is the kernel's, past every check of ours.
  const syscall = effectiveMountApi() === 'new' ? /^(fsopen|fsconfig)$/ : 'mount';
  for (const share of [createSandbox['virtio-fs'][0]!, createSandbox['9p'][0]!, runtimeRs[0]!]) {
    const err = await rejection(sandbox.addStorages([rebase(share, guest)]));
    t.match(err, { syscall }, `${share.driver} ${share.options}: ${err.message}`);
    t.equal(mountSnapshot(), before, 'nothing mounted');
  }
  t.equal(treeSnapshot(root), tree, 'and no directory left');

  const shm = rebase(createSandbox['virtio-fs'][1]!, guest);
  const paths = await sandbox.addStorages([shm]);
  t.same(paths, [join(guest, 'sandbox', 'shm')]);
  const m = mountAt(paths[0]!)!;
  t.equal(m.fstype, 'tmpfs');
  t.equal(m.source, 'shm');
  for (const o of ['noexec', 'nosuid', 'nodev']) t.ok(m.mountOptions.includes(o), o);
  t.ok(m.superOptions.includes('size=65536k'), `${m.superOptions}`);
  t.equal(statSync(paths[0]!).mode & 0o7777, 0o1777, 'mode=1777');
  await sandbox.destroy();
  t.equal(mountSnapshot(), before, 'released');
});

t.test('CreateContainer: Kata’s storages mount, and release leaves nothing', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const guest = join(root, 'run', 'kata-containers');
  const byDriver = (d: string, fstype?: string): KataStorage =>
    createContainer.storages.find((s) => s.driver === d && (fstype === undefined || s.fstype === fstype))!;
  // The shared directory with the secret the host shared into it (virtiofsd's view).
  const watch = rebase(byDriver('watchable-bind'), guest);
  mkdirSync(watch.source, { recursive: true });
  writeFileSync(join(watch.source, 'token'), 's3cret');
  const before = mountSnapshot();
  const tree = treeSnapshot(root);

  const sandbox = new Sandbox({ allowedRoots: [guest], watchIntervalMs: 50 });
  const request = [byDriver('watchable-bind'), byDriver('ephemeral', 'tmpfs'), byDriver('local')].map((s) =>
    rebase(s, guest),
  );
  const paths = await sandbox.addStorages(request, { containerId: createContainer.containerId });
  t.same(
    paths,
    request.map((s) => s.mount_point),
  );
  const [watchable, ephemeral, local] = paths as [string, string, string];
  t.equal(readFileSync(join(watchable, 'token'), 'utf8'), 's3cret', 'watchable-bind: the secret’s copy');
  t.equal(mountAt(watchable)!.fstype, 'tmpfs');
  t.equal(mountAt(ephemeral)!.fstype, 'tmpfs', 'ephemeral: a tmpfs');
  t.equal(statSync(ephemeral).gid, 2000, 'fsgid=2000: the volume’s group');
  t.equal(mountAt(local), undefined, 'local: a directory, not a mount');
  t.equal(statSync(local).mode & 0o7777, 0o2777, 'mode=0777, setgid from fsgid');
  t.equal(statSync(local).gid, 2000);

  // The disks wait for a hot-plugged PCI or SCSI device: validated and planned, not mounted here.
  for (const s of createContainer.storages.filter((s) => s.driver === 'scsi')) {
    t.doesNotThrow(() => validateStorage(normalizeStorage(s), [KATA], false), `${s.driver} ${s.source}`);
  }
  await sandbox.removeContainer(createContainer.containerId);
  t.equal(mountSnapshot(), before, 'mountinfo as before');
  t.equal(treeSnapshot(root), tree, 'and the tree');
});

t.test(
  'genpolicy’s storage shapes (every field written, fs_group at its defaults) mount',
  { skip: cannotMount },
  async (t) => {
    const root = scratchDir(t);
    const guest = join(root, 'run', 'kata-containers');
    const watch = rebase(genpolicy[2]!, guest);
    mkdirSync(watch.source, { recursive: true });
    writeFileSync(join(watch.source, 'app.conf'), 'level=debug');
    const before = mountSnapshot();
    const sandbox = new Sandbox({ allowedRoots: [guest], watchIntervalMs: 50 });
    const paths = await sandbox.addStorages(
      genpolicy.map((s) => rebase(s, guest)),
      { containerId: 'c' },
    );
    t.equal(statSync(paths[0]!).gid, 0, 'local: group_id 0 is root’s group');
    t.equal(mountAt(paths[1]!)!.fstype, 'tmpfs');
    t.equal(readFileSync(join(paths[2]!, 'app.conf'), 'utf8'), 'level=debug');
    await sandbox.removeContainer('c');
    t.equal(mountSnapshot(), before);
  },
);

t.test('a virtio-mmio block volume (a loop device as the guest’s /dev/vdb)', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const guest = join(root, 'run', 'kata-containers');
  const disk = attachLoop(t, { ext4: true, sizeMb: 16 });
  const mmio = agentTestVolumes.find((s) => s.driver === 'mmioblk')!;
  const before = mountSnapshot();
  const sandbox = new Sandbox({ allowedRoots: [guest] });
  const [path] = await sandbox.addStorages([{ ...rebase(mmio, guest), source: disk }], { containerId: 'c' });
  const m = mountAt(path!)!;
  t.equal(m.fstype, 'ext4');
  t.equal(m.source, disk);
  await sandbox.removeContainer('c');
  t.equal(mountSnapshot(), before);
});

// ---- the specs ----------------------------------------------------------------------------------

const SHM = 64 * 1024 * 1024;

t.test('the runtime-spec’s own config.md example plans', async (t) => {
  const spec = load<OciSpec>('runtime-spec-config-example.json');
  // Its hugepage limit is past 2^53: JSON.parse has already rounded it.
  t.notOk(Number.isSafeInteger(spec.linux!.resources!.hugepageLimits![0]!.limit));
  const before = structuredClone(spec);
  const p = planContainer('example', spec, { bundle: '/bundles/example', shmSize: SHM });
  t.same(spec, before, 'the input is untouched');
  t.same(p.storages, [], 'no volume: nothing for the agent to mount');
  t.equal(p.spec.root!.path, '/run/kata-containers/shared/containers/example/rootfs');
  t.same(p.spec.linux, spec.linux, 'linux (hugepageLimits too) passes through as it was');
  const shm = p.spec.mounts!.find((m) => m.destination === '/dev/shm')!;
  t.same(shm, {
    destination: '/dev/shm',
    type: 'bind',
    source: '/run/kata-containers/sandbox/shm',
    options: ['rbind'],
  });
  t.same(
    p.hostActions.map((a) => [a.action, a.for]),
    [['share', 'root.path']],
  );
});

t.test('runc spec plans: its mounts are the container’s, /dev/shm is the sandbox’s', async (t) => {
  const spec = load<OciSpec>('runc-spec.json');
  const p = planContainer('runc', spec, { bundle: '/bundles/runc', shmSize: SHM });
  t.same(p.storages, []);
  const dests = spec.mounts!.map((m) => m.destination);
  t.same(
    p.spec.mounts!.map((m) => m.destination),
    dests,
  );
  for (const m of p.spec.mounts!.filter((m) => m.destination !== '/dev/shm')) {
    t.same(
      m,
      spec.mounts!.find((x) => x.destination === m.destination),
      `${m.destination} unchanged`,
    );
  }
  t.equal(p.spec.mounts!.find((m) => m.destination === '/dev/shm')!.source, '/run/kata-containers/sandbox/shm');
});

t.test('a containerd CRI pause spec plans as Kata would', async (t) => {
  const spec = load<OciSpec>('containerd-cri-pause.json');
  const sandboxId = spec.annotations!['io.kubernetes.cri.sandbox-id']!;
  const settings: RuntimeSettings = { sandboxId, bundle: `/run/containerd/bundles/${sandboxId}`, shmSize: SHM };
  const p = planContainer(sandboxId, spec, settings);
  t.same(p.storages, []);
  const byDest = new Map(p.spec.mounts!.map((m) => [m.destination, m]));
  t.equal(byDest.get('/dev/shm')!.source, '/run/kata-containers/sandbox/shm');
  const resolv = p.hostActions.find(
    (a) => a.for === `mounts[${spec.mounts!.findIndex((m) => m.destination === '/etc/resolv.conf')}]`,
  ) as ShareAction;
  t.equal(resolv.action, 'share');
  t.equal(resolv.readonly, true, 'resolv.conf is shared read-only');
  t.equal(byDest.get('/etc/resolv.conf')!.source, resolv.guestPath);
});

t.test('a CRI pod with volumes plans as Kata would, rro read-only like ro', async (t) => {
  const spec = load<OciSpec>('cri-pod-with-volumes.json');
  const sandboxId = spec.annotations!['io.kubernetes.cri.sandbox-id']!;
  const source = (dest: string): string => spec.mounts!.find((m) => m.destination === dest)!.source!;
  const settings: RuntimeSettings = {
    sandboxId,
    bundle: '/run/containerd/bundles/web',
    shmSize: SHM,
    volumes: {
      [source('/var/cache/nginx')]: { fstype: 'ext4', kind: 'directory', gid: 2000 },
      [source('/scratch')]: { fstype: 'tmpfs', options: ['size=64m'], kind: 'directory', gid: 2000 },
      [source('/srv/data')]: { fstype: 'xfs', kind: 'directory' },
    },
  };
  const p = planContainer('web', spec, settings);
  t.same(
    p.storages.map((s) => [s.driver, s.fstype, s.options]),
    [
      ['watchable-bind', 'bind', ['rbind', 'rprivate', 'ro']],
      ['watchable-bind', 'bind', ['rbind', 'rprivate', 'ro']],
      ['ephemeral', 'tmpfs', ['fsgid=2000', 'size=64m']],
      ['local', 'local', ['mode=0777', 'fsgid=2000']],
    ],
  );
  const share = (dest: string): ShareAction =>
    p.hostActions.find(
      (a) => a.for === `mounts[${spec.mounts!.findIndex((m) => m.destination === dest)}]`,
    ) as ShareAction;
  t.equal(share('/srv/static').readonly, true, 'hostPath ro');
  t.equal(share('/srv/data').readonly, true, 'hostPath rro (KEP-3857) is read-only too');
  t.equal(share('/etc/tls').readonly, true, 'secret');
  t.equal(share('/var/run/secrets/kubernetes.io/serviceaccount').readonly, true, 'projected token');
  t.equal(share('/etc/hosts').readonly, false);
  const data = p.spec.mounts!.find((m) => m.destination === '/srv/data')!;
  t.same(data.options, ['rbind', 'rprivate', 'rro'], 'the container still gets its recursive read-only bind');
  // Everything the agent gets validates under the guest's root.
  for (const s of p.storages) t.doesNotThrow(() => validateStorage(normalizeStorage(s), [KATA], false), s.mountPoint);
});
