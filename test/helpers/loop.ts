// Loop devices for block-driver tests. They are global and shared with other processes: numbers
// are never assumed, and whatever a test attaches (or creates) it detaches (and removes).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Teardown = { teardown(fn: () => void | Promise<void>): void };

function image(t: Teardown, sizeMb: number, ext4: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'kata-storage-img-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const img = join(dir, 'disk.img');
  execFileSync('truncate', ['-s', `${sizeMb}M`, img]);
  if (ext4) execFileSync('mkfs.ext4', ['-q', '-F', img]);
  return img;
}

/** A loop device over an existing image file, detached at teardown. */
export function attachImage(t: Teardown, img: string, opts: { readOnly?: boolean } = {}): string {
  const dev = execFileSync('losetup', ['--find', '--show', ...(opts.readOnly ? ['--read-only'] : []), img], {
    encoding: 'utf8',
  }).trim();
  t.teardown(() => void spawnSync('losetup', ['-d', dev]));
  return dev;
}

/** A loop device over a fresh image (blank, or ext4), detached at teardown. */
export function attachLoop(t: Teardown, opts: { sizeMb?: number; ext4?: boolean } = {}): string {
  return attachImage(t, image(t, opts.sizeMb ?? 16, opts.ext4 === true));
}

/** A loop device number that does not exist now (so its appearance is a real hot-plug). */
export function unusedLoopNumber(except: readonly number[] = []): number {
  for (let tries = 0; tries < 200; tries++) {
    const n = 300 + Math.floor(Math.random() * 700);
    if (!except.includes(n) && !existsSync(`/sys/block/loop${n}`) && !existsSync(`/dev/loop${n}`)) return n;
  }
  throw new Error('no unused loop device number found');
}

/** Creates /dev/loop<n> over a fresh ext4 image (losetup creates the device), undone at teardown. */
export function createLoopLater(t: Teardown, n: number): string {
  return loopLater(t, n)();
}

/**
 * An ext4 image made now and a function that, called later, creates /dev/loop<n> over it (a
 * hot-plug without the mkfs in the way of the timing); undone at teardown once created.
 */
export function loopLater(t: Teardown, n: number): () => string {
  const img = image(t, 16, true);
  return () => attachAs(t, n, img);
}

function attachAs(t: Teardown, n: number, img: string): string {
  const dev = `/dev/loop${n}`;
  execFileSync('losetup', [dev, img]);
  t.teardown(() => {
    spawnSync('losetup', ['-d', dev]);
    // LOOP_CTL_REMOVE: losetup cannot remove a device it created; python3 can issue the ioctl.
    spawnSync('python3', ['-c', `import fcntl,os;fcntl.ioctl(os.open('/dev/loop-control',os.O_RDWR),0x4C81,${n})`]);
  });
  return dev;
}
