import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { umount } from '../../lib/index';
import { cannotMount } from '../helpers/mountinfo';

t.test('async mounts do not use the libuv pool', { skip: cannotMount }, async (t) => {
  const out = execFileSync(
    process.execPath,
    [...process.execArgv, join(__dirname, '..', 'fixtures', 'blocked-pool.ts')],
    {
      env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
      timeout: 60000,
      encoding: 'utf8',
    },
  );
  const r = JSON.parse(out) as { blockedBefore: boolean; blockedDuring: boolean; cycles: number; statDone: boolean };
  t.equal(r.blockedBefore, true, 'the only pool thread is blocked on the FIFO');
  t.equal(r.cycles, 20, 'all 20 mount/umount cycles completed and were seen in mountinfo');
  t.equal(r.blockedDuring, true, 'the pool was still blocked while they ran');
  t.equal(r.statDone, true, 'the queued fs.stat ran once the pool was freed');
});

t.test('pool threads carry the name kata-pool, where ps and top show it', async (t) => {
  // Fails at once (nothing is mounted there), but only after a pool thread has run it.
  await t.rejects(umount('/nonexistent-kata-pool-name'), { code: 'ENOENT' });
  const names = readdirSync('/proc/self/task').map((tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  });
  t.ok(names.includes('kata-pool'), `a kata-pool thread among ${JSON.stringify(names)}`);
});
