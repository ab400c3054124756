// A mount point's parent swapped for a symlink to outside the allowed root, in a tight loop in
// another process, while the sandbox adds and removes storages there: with mounts resolved
// beneath the root no mount may ever land outside it (the Kata agent has no defence here).
import t from 'tap';
import { spawn } from 'node:child_process';
import { lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, newMountApiSupport } from '../lib/index';
import { cannotMount, mountsUnder, scratchDir } from './helpers/mountinfo';

const noOpenat2 = cannotMount || (newMountApiSupport().openat2 ? false : 'needs openat2 (Linux 5.6) to resolve beneath the root');

t.test('a symlink swapped in after validation never redirects a sandbox mount', { skip: noOpenat2 }, async (t) => {
  const dir = scratchDir(t);
  const root = join(dir, 'root');
  const outside = join(dir, 'outside');
  mkdirSync(join(root, 'pod', 'vol'), { recursive: true });
  mkdirSync(join(outside, 'vol'), { recursive: true });
  const swapper = spawn(
    process.execPath,
    [
      '-e',
      `const fs = require('fs');
       const [pod, real, outside] = process.argv.slice(1);
       const stop = Date.now() + 60000;
       while (Date.now() < stop) {
         try { fs.renameSync(pod, real); fs.symlinkSync(outside, pod); fs.unlinkSync(pod); fs.renameSync(real, pod); } catch {}
       }`,
      join(root, 'pod'),
      join(root, 'pod.real'),
      outside,
    ],
    { stdio: 'ignore' },
  );
  t.teardown(() => {
    swapper.kill('SIGKILL');
  });
  const sandbox = new Sandbox({ allowedRoots: [root] });
  const storage = { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: ['size=16k'], mountPoint: join(root, 'pod', 'vol') };
  const iterations = Number(process.env.KATA_RACE_ITERATIONS ?? 1000);
  let mounted = 0;
  let refused = 0;
  let escapes = 0;
  let symlinkSeen = 0;
  for (let i = 0; i < iterations; i++) {
    try {
      if (lstatSync(join(root, 'pod')).isSymbolicLink()) symlinkSeen++;
    } catch {
      symlinkSeen++; // renamed away this instant: the swap is running too
    }
    try {
      await sandbox.addStorages([storage], { containerId: 'c' });
      mounted++;
    } catch {
      refused++;
    }
    if (mountsUnder(outside).length > 0) escapes++;
    await sandbox.removeContainer('c').catch(() => undefined);
  }
  swapper.kill('SIGKILL');
  await new Promise((r) => swapper.once('exit', r));
  await sandbox.destroy().catch(() => undefined);
  t.equal(escapes, 0, `no mount outside the root in ${iterations} attempts (${mounted} mounted inside, ${refused} refused)`);
  t.ok(mounted > 0, 'some mounts went through between swaps');
  // How often an attempt meets the symlink depends on scheduling; that the swap really ran is
  // what makes the zero above mean something.
  t.ok(symlinkSeen > 0, `the swap was in progress (seen ${symlinkSeen} times)`);
  t.same(mountsUnder(outside), [], 'nothing outside');
  for (const m of mountsUnder(root)) t.fail(`left mounted: ${m.mountPoint}`);
});
