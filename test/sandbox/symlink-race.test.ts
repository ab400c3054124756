// A mount point's parent swapped for a symlink to outside the allowed root, in a tight loop in
// another process, while the sandbox adds and removes storages there: with mounts resolved
// beneath the root no mount may ever land outside it (the Kata agent has no defence here).
//
// The zero escapes mean something only if the swap really ran while the sandbox worked, so the
// preconditions are made, not hoped for: the mounts start only once the swapper has reported a
// completed swap (bounded wait), the swapper must still be running when they end, and the loop
// goes on (bounded) until both outcomes were met: a mount that went through and one the swap
// refused.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, newMountApiSupport } from '../../lib/index';
import { cannotMount, mountsUnder, scratchDir } from '../helpers/mountinfo';

const noOpenat2 =
  cannotMount || (newMountApiSupport().openat2 ? false : 'needs openat2 (Linux 5.6) to resolve beneath the root');

// Exchanges the pod directory and a symlink to outside atomically (renameat2 RENAME_EXCHANGE,
// which Node lacks), so the path is always there, a directory or the symlink: the sandbox never
// creates a stand-in that would jam the swap. Prints "swapping" after the first exchange; on
// SIGTERM it leaves the directory in place and prints its count.
const SWAPPER = `
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
pod, link = (p.encode() for p in sys.argv[1:3])
AT_FDCWD, RENAME_EXCHANGE = -100, 2
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
swaps = 0
while not stop:
    if libc.renameat2(AT_FDCWD, pod, AT_FDCWD, link, RENAME_EXCHANGE) != 0:
        sys.stderr.write('renameat2: %s\\n' % os.strerror(ctypes.get_errno()))
        sys.exit(1)
    swaps += 1
    if swaps == 1:
        sys.stdout.write('swapping\\n'); sys.stdout.flush()
if os.path.islink(pod):
    libc.renameat2(AT_FDCWD, pod, AT_FDCWD, link, RENAME_EXCHANGE)
    swaps += 1
sys.stdout.write('swaps %d\\n' % swaps); sys.stdout.flush()
`;

const READY_TIMEOUT_MS = 60_000;
// The interpreter itself: a version-manager shim in between (pyenv) is slow to start and does not
// pass the SIGTERM that stops the swap on.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

t.test('a symlink swapped in after validation never redirects a sandbox mount', { skip: noOpenat2 }, async (t) => {
  const dir = scratchDir(t);
  const root = join(dir, 'root');
  const outside = join(dir, 'outside');
  mkdirSync(join(root, 'pod', 'vol'), { recursive: true });
  mkdirSync(join(outside, 'vol'), { recursive: true });
  symlinkSync(outside, join(root, 'pod.link'));
  // Not the code under test: started without the sanitizer runtime a hardening run preloads.
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  const swapper = spawn(PYTHON, ['-c', SWAPPER, join(root, 'pod'), join(root, 'pod.link')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let stderr = '';
  swapper.stderr.setEncoding('utf8');
  swapper.stderr.on('data', (d: string) => (stderr += d));
  t.teardown(() => void swapper.kill('SIGKILL'));
  let out = '';
  swapper.stdout.setEncoding('utf8');
  swapper.stdout.on('data', (d: string) => (out += d));
  const exited = new Promise<void>((r) => swapper.once('exit', () => r()));
  const ready = await Promise.race([
    new Promise<boolean>((r) => swapper.stdout.on('data', () => out.includes('swapping\n') && r(true))),
    exited.then(() => false),
    new Promise<boolean>((r) => setTimeout(() => r(false), READY_TIMEOUT_MS).unref()),
  ]);
  if (!ready) {
    t.fail(
      `the swapper never completed a swap within ${READY_TIMEOUT_MS} ms (exit code ${swapper.exitCode}, stderr: ${JSON.stringify(stderr)}); nothing to race against`,
    );
    return;
  }

  const sandbox = new Sandbox({ allowedRoots: [root] });
  const storage = {
    driver: 'ephemeral',
    source: 'tmpfs',
    fstype: 'tmpfs',
    options: ['size=16k'],
    mountPoint: join(root, 'pod', 'vol'),
  };
  const iterations = Number(process.env.KATA_RACE_ITERATIONS ?? 1000);
  let attempts = 0;
  let mounted = 0;
  let escapes = 0;
  const refused: Record<string, number> = {};
  // At least `iterations`, then on until both outcomes were seen, at most ten times as many.
  while (
    attempts < iterations ||
    ((mounted === 0 || Object.keys(refused).length === 0) && attempts < iterations * 10)
  ) {
    attempts++;
    try {
      await sandbox.addStorages([storage], { containerId: 'c' });
      mounted++;
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'unknown';
      refused[code] = (refused[code] ?? 0) + 1;
    }
    if (mountsUnder(outside).length > 0) escapes++;
    await sandbox.removeContainer('c').catch(() => undefined);
  }
  const stillSwapping = swapper.exitCode === null && swapper.signalCode === null;
  swapper.kill('SIGTERM');
  await exited;
  t.ok(lstatSync(join(root, 'pod')).isDirectory(), 'the swapper left the directory in place');
  const swaps = Number(/swaps (\d+)/.exec(out)?.[1] ?? 0);
  await sandbox.destroy().catch(() => undefined);
  t.ok(stillSwapping, `the swapper ran from before the first attempt to after the last (${swaps} swaps)`);
  t.equal(
    escapes,
    0,
    `no mount outside the root in ${attempts} attempts (${mounted} mounted inside, refused: ${JSON.stringify(refused)})`,
  );
  t.ok(mounted > 0, 'some mounts went through between swaps');
  t.ok(Object.keys(refused).length > 0, 'some attempts met the swap and were refused');
  // Validation or the beneath walk met the symlink (ERR_INVALID_STORAGE, ELOOP, ENOTDIR), or the
  // add first finished a release the swap had made fail (the unmount found no mount: EINVAL).
  t.same(
    Object.keys(refused).filter((c) => !['ERR_INVALID_STORAGE', 'ELOOP', 'ENOTDIR', 'EINVAL'].includes(c)),
    [],
    'refused only for what the swap does',
  );
  t.same(mountsUnder(outside), [], 'nothing outside');
  for (const m of mountsUnder(root)) t.fail(`left mounted: ${m.mountPoint}`);
});
