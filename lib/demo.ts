// The demo a new user runs first: a sandbox, two containers sharing storages, each step's mounts,
// reference counts and timings, and nothing left behind at the end.
import { execFileSync, spawnSync } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MkfsEvent, MountEvent, UmountEvent, WaitEvent } from './events';
import { columns } from './cli-common';
import { DRIVER_BLK_PCI_TYPE, DRIVER_EPHEMERAL_TYPE, DRIVER_LOCAL_TYPE } from './drivers';
import { readMountinfo } from './mountinfo';
import { Sandbox } from './sandbox';
import type { Storage } from './storage';

type Print = (line: string) => void;

const ms = (n: number): string => (n < 10 ? n.toFixed(2) : n.toFixed(1)) + ' ms';

function mountsUnder(dir: string): Map<string, { fstype: string; source: string }> {
  const out = new Map<string, { fstype: string; source: string }>();
  for (const m of readMountinfo()) {
    if (m.mountPoint !== dir && !m.mountPoint.startsWith(`${dir}/`)) continue;
    out.set(m.mountPoint, { fstype: m.fstype, source: m.source });
  }
  return out;
}

/** The sandbox's table joined with what the kernel says is mounted. */
export function storageTable(sb: Sandbox, root: string): string[] {
  const mounted = mountsUnder(root);
  const rows = [['mount point', 'driver', 'refs', 'kernel (mountinfo)']];
  for (const [path, info] of sb.storages()) {
    const m = mounted.get(path);
    const rel = path.slice(root.length + 1);
    rows.push([
      rel,
      info.driver + (info.shared ? ' (shared)' : ''),
      String(info.refcount),
      m ? `${m.fstype} ${m.source}` : '(directory, no mount)',
    ]);
  }
  if (rows.length === 1) rows.push(['(none)', '', '', '']);
  return columns(rows, { rule: true });
}

function events(root: string, print: Print): () => void {
  const rel = (p: string): string => (p.startsWith(`${root}/`) ? p.slice(root.length + 1) : p);
  const subs: [string, (m: unknown) => void][] = [
    [
      'kata-storage:wait',
      (m) => {
        const e = m as WaitEvent;
        print(`      wait   ${e.driver} ${e.source} -> ${e.device ?? e.error?.message} (${ms(e.durationMs)})`);
      },
    ],
    [
      'kata-storage:mkfs',
      (m) => {
        const e = m as MkfsEvent;
        print(`      mkfs   ${e.fstype} ${e.device} (${ms(e.durationMs)})`);
      },
    ],
    [
      'kata-storage:mount',
      (m) => {
        const e = m as MountEvent;
        print(`      mount  ${e.fstype || 'bind'} ${e.source} -> ${rel(e.mountPoint)} (${ms(e.durationMs)})`);
      },
    ],
    [
      'kata-storage:umount',
      (m) => {
        const e = m as UmountEvent;
        if (e.step === 'remove')
          print(
            `      kept ${rel(e.path)}: ${(e.error as NodeJS.ErrnoException | undefined)?.code ?? 'error'} (retried later)`,
          );
        else print(`      umount ${rel(e.mountPoint)} [${e.reason}] (${ms(e.durationMs)})`);
      },
    ],
  ];
  for (const [name, fn] of subs) subscribe(name, fn);
  return () => {
    for (const [name, fn] of subs) unsubscribe(name, fn);
  };
}

export async function runDemo(print: Print = (l) => console.log(l)): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('the demo mounts filesystems and attaches a loop device: run it as root (npm run demo)');
  const work = mkdtempSync(join(tmpdir(), 'kata-storage-demo-'));
  const root = join(work, 'run');
  mkdirSync(root);
  const image = join(work, 'disk.img');
  let loop: string | undefined;
  let stopEvents = (): void => undefined;
  let sb: Sandbox | undefined;
  try {
    execFileSync('truncate', ['-s', '64M', image]);
    loop = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
    const name = loop.slice('/dev/'.length);
    // The disk is announced to the guest as PCI path 02; this VM has no hot-plug, so the sysfs
    // the resolver walks is generated, and the device node it names is the real loop device.
    const sysfsRoot = join(work, 'sys');
    mkdirSync(join(sysfsRoot, 'devices', 'pci0000:00', '0000:00:02.0', 'virtio2', 'block', name), { recursive: true });
    print(`kata-storage demo: allowed root ${root}`);
    print(`  disk: ${loop} (64 MiB image) announced as PCI path 02 in a generated sysfs (${sysfsRoot})\n`);

    sb = new Sandbox({ allowedRoots: [root], sysfsRoot, hotplugTimeoutMs: 3000 });
    stopEvents = events(root, print);
    const shm: Storage = {
      driver: DRIVER_EPHEMERAL_TYPE,
      source: 'shm',
      fstype: 'tmpfs',
      options: ['noexec,nosuid,nodev', 'mode=1777', 'size=64m'],
      mountPoint: join(root, 'sandbox', 'shm'),
      shared: true,
    };
    const emptyDir: Storage = {
      driver: DRIVER_LOCAL_TYPE,
      source: 'local',
      fstype: 'local',
      options: ['mode=0777', 'fsgid=2000'],
      mountPoint: join(root, 'sandbox', 'local', 'cache'),
    };
    const disk: Storage = {
      driver: DRIVER_BLK_PCI_TYPE,
      source: '02',
      fstype: 'ext4',
      driverOptions: ['create_filesystem'],
      options: ['nodev'],
      mountPoint: join(root, 'sandbox', 'disks', 'data'),
      fsGroup: { groupId: 2000 },
    };

    const box = sb;
    const steps: [string, () => Promise<unknown>][] = [
      ['sandbox: shared-memory ephemeral volume', () => box.addStorages([shm])],
      ['container A: emptyDir + blk disk', () => box.addStorages([emptyDir, disk], { containerId: 'A' })],
      ['container B: the same emptyDir + disk (shared)', () => box.addStorages([emptyDir, disk], { containerId: 'B' })],
      ['remove container A', () => box.removeContainer('A')],
      ['remove container B (last user of emptyDir + disk)', () => box.removeContainer('B')],
      ['destroy the sandbox', () => box.destroy()],
    ];
    const timings: [string, number][] = [];
    for (const [i, [title, run]] of steps.entries()) {
      print(`step ${i + 1}: ${title}`);
      const start = performance.now();
      await run();
      const took = performance.now() - start;
      timings.push([title, took]);
      print(`    took ${ms(took)}`);
      for (const line of storageTable(box, root)) print(`    ${line}`);
      print('');
    }
    print('step timings:');
    for (const [title, took] of timings) print(`  ${ms(took).padStart(10)}  ${title}`);
  } finally {
    stopEvents();
    if (sb) await sb.destroy().catch(() => undefined);
    const left = [...mountsUnder(work).keys()];
    for (const m of left.reverse()) spawnSync('umount', ['-l', m]);
    if (loop) spawnSync('losetup', ['-d', loop]);
    const attached = loop ? spawnSync('losetup', ['-j', image], { encoding: 'utf8' }).stdout.trim() : '';
    rmSync(work, { recursive: true, force: true });
    print(
      `\nleft behind: ${left.length === 0 && attached === '' ? 'nothing (no mount, loop device detached, directories removed)' : `${left.join(', ')} ${attached}`}`,
    );
  }
}
