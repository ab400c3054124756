// Round trip: a real `runc spec` plus the mounts kubelet and containerd add, planned on the "host"
// side by kata-storage/runtime, applied on the "guest" side by Sandbox, all in this test's private
// mount namespace. The test plays the runtime and the hypervisor: it reads the host facts the
// runtime would (mountinfo, stat), performs the host actions with util-linux mount(8), and stands
// in for virtiofsd by giving the guest's shared dir the host share dir's content (a bind in the
// same peer group, so later host shares propagate, as virtiofsd shows them). Every mount of the
// rewritten spec is then checked against /proc/self/mountinfo and the filesystem, everything is
// released, and nothing may be left.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Sandbox } from '../../lib/index';
import {
  planContainer,
  planSandbox,
  rollbackHostActions,
  type HostAction,
  type HostVolume,
  type OciSpec,
  type RuntimeSettings,
} from '../../lib/runtime/index';
import { attachLoop } from '../helpers/loop';
import { cannotMount, mountAt, mountSnapshot, mountsUnder, readMountinfo, scratchDir } from '../helpers/mountinfo';

// CI installs runc (.ci/run): there a missing runc fails the test (at `runc spec`), never skips it.
const runcMissing =
  process.env.CI !== 'true' &&
  spawnSync('runc', ['--version']).error !== undefined &&
  'runc is not installed (apt-get install runc)';
const HUGEPAGES = '/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages';

function sh(cmd: string, ...args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** What Kata's runtime reads at a volume source: stat (kind, gid) and the filesystem mounted there. */
function hostFacts(path: string): HostVolume {
  const st = statSync(path);
  const facts: HostVolume = {
    gid: st.gid,
    kind: st.isBlockDevice() ? 'block' : st.isDirectory() ? 'directory' : st.isFile() ? 'file' : 'char',
  };
  const m = mountAt(path);
  if (m !== undefined) {
    facts.fstype = m.fstype;
    facts.options = m.superOptions;
  }
  return facts;
}

/** The host half of a plan, as Kata's runtime does it (ShareFile's binds; attached devices exist already). */
function performHostActions(actions: HostAction[]): void {
  for (const a of actions) {
    if (a.action === 'share') {
      if (statSync(a.source).isDirectory()) mkdirSync(a.hostPath, { recursive: true });
      else {
        mkdirSync(dirname(a.hostPath), { recursive: true });
        writeFileSync(a.hostPath, '');
      }
      if (!a.readonly) {
        sh('mount', '--bind', a.source, a.hostPath);
        continue;
      }
      // Kata's ShareFile for read-only: a remount does not propagate to the guest's view, so a
      // private read-only bind is made first and that is bound into the share dir.
      const priv = join(dirname(dirname(a.hostPath)), 'private', a.hostPath.slice(dirname(a.hostPath).length + 1));
      mkdirSync(priv, { recursive: true });
      sh('mount', '--bind', a.source, priv);
      sh('mount', '--make-private', priv);
      sh('mount', '-o', 'remount,bind,ro', priv);
      sh('mount', '--bind', priv, a.hostPath);
      sh('umount', priv);
    } else if (a.action === 'attach-block-device') {
      // The loop device is the disk the hypervisor gave the guest; the guest is this kernel.
      if (!statSync(a.source).isBlockDevice()) throw new Error(`${a.source} is not a block device`);
    } else {
      throw new Error(`unexpected host action ${a.action}`);
    }
  }
}

function undoHostActions(actions: HostAction[]): void {
  for (const u of rollbackHostActions(actions)) {
    if (u.action === 'unshare') sh('umount', u.hostPath);
  }
}

function runcSpec(dir: string, marker: string): OciSpec {
  mkdirSync(join(dir, 'rootfs', 'etc'), { recursive: true });
  writeFileSync(join(dir, 'rootfs', 'etc', 'marker'), marker);
  sh('runc', 'spec', '--bundle', dir);
  return JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as OciSpec;
}

t.test(
  'runc spec + kubelet volumes: plan, apply in the guest, check, release',
  { skip: cannotMount || runcMissing },
  async (t) => {
    const before = mountSnapshot();
    const root = scratchDir(t, 'kata-storage-rt-');
    const host = join(root, 'host');
    const guest = join(root, 'guest');
    mkdirSync(guest, { recursive: true });
    const undo: (() => void)[] = [];
    t.teardown(() => {
      for (const f of undo.reverse()) f();
    });

    // kubelet's pod volumes on the host.
    const volumes = join(host, 'pods', 'uid-1', 'volumes');
    const mem = join(volumes, 'kubernetes.io~empty-dir', 'mem');
    const cache = join(volumes, 'kubernetes.io~empty-dir', 'cache');
    const hugepage = join(volumes, 'kubernetes.io~empty-dir', 'hugepage');
    const secret = join(volumes, 'kubernetes.io~secret', 'token');
    const configmap = join(volumes, 'kubernetes.io~configmap', 'config');
    for (const d of [mem, cache, hugepage, secret, configmap]) mkdirSync(d, { recursive: true });
    writeFileSync(join(secret, 'token'), 's3cret');
    writeFileSync(join(configmap, 'app.conf'), 'level=debug');
    chownSync(cache, 0, 2000); // an fsGroup set on the emptyDir
    sh('mount', '-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mem); // emptyDir medium: Memory, sizeLimit 8Mi
    undo.push(() => sh('umount', mem));
    const withHugepages = existsSync(HUGEPAGES);
    if (withHugepages) {
      const previous = readFileSync(HUGEPAGES, 'utf8').trim();
      undo.push(() => writeFileSync(HUGEPAGES, previous));
      sh('mount', '-t', 'hugetlbfs', '-o', 'pagesize=2M', 'nodev', hugepage); // emptyDir medium: HugePages-2Mi
      undo.push(() => sh('umount', hugepage));
    }
    const disk = attachLoop(t, { ext4: true, sizeMb: 16 }); // a block volume the runtime attached

    // Sandbox (pause) and app bundles from runc, with the mounts kubelet/containerd add.
    const pauseSpec = runcSpec(join(host, 'bundles', 'pod'), 'pause');
    const appBundle = join(host, 'bundles', 'app');
    const appSpec = runcSpec(appBundle, 'app');
    const kubelet = (destination: string, source: string, ro = false) => ({
      destination,
      type: 'bind',
      source,
      options: ['rbind', 'rprivate', ro ? 'ro' : 'rw'],
    });
    appSpec.mounts!.push(
      kubelet('/cache', cache),
      kubelet('/mem', mem),
      kubelet('/var/run/secrets/token', secret, true),
      kubelet('/etc/config', configmap, true),
      kubelet('/data', disk),
    );
    if (withHugepages) {
      appSpec.mounts!.push(kubelet('/hugepages', hugepage));
      appSpec.linux = {
        ...appSpec.linux,
        resources: { ...appSpec.linux?.resources, hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }] },
      };
    }
    const specBefore = structuredClone(appSpec);

    const settings = (bundle: string): RuntimeSettings => ({
      sandboxId: 'pod',
      bundle,
      sharedFs: 'virtio-fs',
      shmSize: 64 * 1024 * 1024,
      blockDeviceDriver: 'virtio-mmio',
      guestSharedDir: join(guest, 'shared', 'containers'),
      guestSandboxDir: join(guest, 'sandbox'),
      hostSharedDir: join(host, 'kata'),
      blockDevices: { [disk]: { virtPath: disk, fstype: 'ext4' } },
      volumes: Object.fromEntries([mem, cache, hugepage, secret, configmap, disk].map((p) => [p, hostFacts(p)])),
    });

    // The sandbox: virtiofsd exports <host>/kata/pod/mounts under the tag kataShared; the guest has
    // it mounted at its shared dir (Kata's guest pre-mount, which the virtio-fs driver accepts).
    const sandboxPlan = planSandbox(settings(appBundle));
    t.same(
      sandboxPlan.storages.map((s) => s.driver),
      ['virtio-fs', 'ephemeral'],
    );
    const hostShare = join(host, 'kata', 'pod', 'mounts');
    const guestShared = join(guest, 'shared', 'containers');
    mkdirSync(hostShare, { recursive: true });
    mkdirSync(guestShared, { recursive: true });
    sh('mount', '-t', 'tmpfs', '-o', 'size=1m', 'kataShared', hostShare);
    undo.push(() => sh('umount', hostShare));
    sh('mount', '--make-shared', hostShare);
    sh('mount', '--bind', hostShare, guestShared);
    undo.push(() => sh('umount', guestShared));

    const sandbox = new Sandbox({ allowedRoots: [guest], hotplugTimeoutMs: 2000 });
    // This kernel has no virtiofs, so the stand-in share is a tmpfs tagged kataShared. The driver
    // accepts a pre-mount only of the type asked for, so the applied storage asks for what is there;
    // the plan itself must have asked for virtiofs.
    t.equal(sandboxPlan.storages[0]!.fstype, 'virtiofs', 'the plan mounts the share as virtiofs');
    await sandbox.addStorages(
      sandboxPlan.storages.map((s) => (s.driver === 'virtio-fs' ? { ...s, fstype: 'tmpfs' } : s)),
    );

    // The pause container, then the app container, each: host actions, then CreateContainer's storages.
    const pause = planContainer('pod', pauseSpec, settings(join(host, 'bundles', 'pod')));
    performHostActions(pause.hostActions);
    await sandbox.addStorages(pause.storages, { containerId: 'pod' });
    const app = planContainer('app', appSpec, settings(appBundle));
    t.same(appSpec, specBefore, 'the input spec is not modified');
    performHostActions(app.hostActions);
    await sandbox.addStorages(app.storages, { containerId: 'app' });

    t.equal(
      readFileSync(join(app.spec.root!.path, 'etc', 'marker'), 'utf8'),
      'app',
      'root.path is the app rootfs in the guest',
    );
    t.equal(readFileSync(join(pause.spec.root!.path, 'etc', 'marker'), 'utf8'), 'pause');

    const byDest = new Map(app.spec.mounts!.map((m) => [m.destination, m]));
    t.equal(byDest.size, appSpec.mounts!.length, 'no mount was dropped');
    // runc's own mounts are the container's business and pass through unchanged.
    for (const d of ['/proc', '/dev', '/dev/pts', '/dev/mqueue', '/sys', '/sys/fs/cgroup']) {
      t.same(
        byDest.get(d),
        appSpec.mounts!.find((m) => m.destination === d),
        `${d} unchanged`,
      );
    }
    const checked = new Set(['/proc', '/dev', '/dev/pts', '/dev/mqueue', '/sys', '/sys/fs/cgroup']);
    const check = (dest: string, fn: (source: string) => void): void => {
      const m = byDest.get(dest)!;
      t.ok(m.source!.startsWith(`${guest}/`), `${dest}: source ${m.source} is a guest path`);
      t.ok(existsSync(m.source!), `${dest}: ${m.source} exists`);
      t.ok(
        m.type === 'bind' || (m.type === 'local' && m.options!.includes('rbind')),
        `${dest}: the container binds it`,
      );
      fn(m.source!);
      checked.add(dest);
    };

    check('/dev/shm', (src) => {
      const m = mountAt(src)!;
      t.equal(m?.fstype, 'tmpfs', '/dev/shm is the sandbox shm tmpfs');
      t.ok(m.superOptions.includes('size=65536k'), `shm size 64 MiB: ${m.superOptions}`);
      t.ok(m.mountOptions.includes('noexec') && m.mountOptions.includes('nodev'), `${m.mountOptions}`);
    });
    check('/mem', (src) => {
      const m = mountAt(src)!;
      t.equal(m?.fstype, 'tmpfs', 'a memory emptyDir is a guest tmpfs');
      t.ok(m.superOptions.includes('size=8192k'), `the sizeLimit: ${m.superOptions}`);
      t.equal(src, join(guest, 'sandbox', 'ephemeral', 'mem'));
    });
    check('/cache', (src) => {
      t.equal(mountAt(src), undefined, 'a local volume is a directory, not a mount');
      const st = statSync(src);
      t.ok(st.isDirectory());
      t.equal(st.mode & 0o777, 0o777, 'mode 0777');
      t.equal(st.gid, 2000, 'the emptyDir’s group (fsgid)');
      // It lives in the sandbox's rootfs as the host shares it (Kata's <shared>/<sandbox>/rootfs/local).
      t.ok(statSync(join(host, 'bundles', 'pod', 'rootfs', 'local', 'cache')).isDirectory());
    });
    // Secrets and configmaps: shared from the host (the very directory, read-only as asked), then
    // Kata's watchable-bind copy of it on a tmpfs, which the container binds.
    for (const [dest, hostDir, file, content] of [
      ['/var/run/secrets/token', secret, 'token', 's3cret'],
      ['/etc/config', configmap, 'app.conf', 'level=debug'],
    ] as const) {
      check(dest, (src) => {
        const watchable = app.storages.find((st) => st.mountPoint === src)!;
        t.equal(watchable?.driver, 'watchable-bind', `${dest}: a watchable-bind storage`);
        const a = statSync(watchable.source);
        const b = statSync(hostDir);
        t.same([a.dev, a.ino], [b.dev, b.ino], `${dest}: the share is the very host directory`);
        t.ok(mountAt(watchable.source)?.mountOptions.includes('ro'), `${dest}: shared read-only as asked`);
        t.equal(mountAt(src)?.fstype, 'tmpfs', `${dest}: the watchable copy is a tmpfs`);
        t.equal(readFileSync(join(src, file), 'utf8'), content);
      });
    }
    check('/data', (src) => {
      const m = mountAt(src)!;
      t.equal(m?.fstype, 'ext4', 'the block volume’s filesystem');
      const st = statSync(disk);
      const dev = readMountinfo().find((e) => e.mountPoint === src)!.majorMinor;
      t.equal(
        dev,
        `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`,
        `mounted from ${disk}`,
      );
      t.ok(readdirSync(src).includes('lost+found'));
    });
    if (withHugepages) {
      check('/hugepages', (src) => {
        const m = mountAt(src)!;
        t.equal(m?.fstype, 'hugetlbfs');
        t.ok(m.superOptions.includes('pagesize=2M'), `${m.superOptions}`);
      });
    }
    t.same(
      [...byDest.keys()].filter((d) => !checked.has(d)),
      [],
      'every mount of the rewritten spec was checked',
    );

    // Release: the agent's side, then the host's (Kata's unmountHostMounts), then the stand-ins.
    await sandbox.removeContainer('app');
    undoHostActions(app.hostActions);
    await sandbox.removeContainer('pod');
    undoHostActions(pause.hostActions);
    await sandbox.destroy();
    t.same(sandbox.storages().size, 0);
    for (const f of undo.splice(0).reverse()) f();
    t.same(mountsUnder(root), [], 'nothing mounted under the test root');
    t.equal(mountSnapshot(), before, 'the mount table is as before');
    t.notOk(existsSync(join(guest, 'sandbox', 'ephemeral', 'mem')), 'the guest paths the sandbox made are gone');
  },
);

t.test(
  'a failing CreateContainer: the agent rolls back, the host undoes its actions',
  { skip: cannotMount || runcMissing },
  async (t) => {
    const root = scratchDir(t, 'kata-storage-rt-');
    const host = join(root, 'host');
    const guest = join(root, 'guest');
    const data = join(host, 'data');
    mkdirSync(data, { recursive: true });
    mkdirSync(guest);
    const spec = runcSpec(join(host, 'bundle'), 'x');
    spec.mounts!.push(
      { destination: '/data', type: 'bind', source: data, options: ['rbind'] },
      { destination: '/disk', type: 'bind', source: '/dev/kata-storage-absent', options: ['rbind'] },
    );
    const before = mountSnapshot();
    const plan = planContainer('c', spec, {
      bundle: join(host, 'bundle'),
      guestSharedDir: join(guest, 'shared'),
      guestSandboxDir: join(guest, 'sandbox'),
      hostSharedDir: join(host, 'kata'),
      blockDeviceDriver: 'virtio-mmio',
      // The runtime believes it attached this disk, but it never shows up in the guest.
      blockDevices: { '/dev/kata-storage-absent': { virtPath: '/dev/kata-storage-absent', fstype: 'ext4' } },
    });
    t.match(plan.hostActions, [
      { action: 'share', for: 'root.path' },
      { action: 'share', for: 'mounts[7]' },
      { action: 'attach-block-device', for: 'mounts[8]' },
    ]);
    performHostActions(plan.hostActions.filter((a) => a.action === 'share'));
    t.not(mountSnapshot(), before);
    const sandbox = new Sandbox({ allowedRoots: [guest], hotplugTimeoutMs: 100 });
    await t.rejects(sandbox.addStorages(plan.storages, { containerId: 'c' }));
    undoHostActions(plan.hostActions.filter((a) => a.action === 'share'));
    await sandbox.destroy();
    t.equal(mountSnapshot(), before, 'nothing left mounted');
    t.same(readdirSync(guest), [], 'nothing left in the guest');
  },
);
