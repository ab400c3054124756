// Surviving an agent restart, at random: random request and release sequences killed at a random
// crash point, and recoveries killed at their own crash points, recovered by the next agent; each
// checked as test/helpers/agent.ts check does.
import t from 'tap';
import { join } from 'node:path';
import * as fc from 'fast-check';
import { type Storage } from '../../lib/index';
import { cannotMount } from '../helpers/mountinfo';
import { eph, watched, runAgent, world, recoverAndCheck, type CrashOp, type CrashScript } from '../helpers/agent';

// Each run is an agent and a recovery (about half a second, more under ASan or load).
t.setTimeout(600000);

t.test(
  'a recovery killed at each of its own crash points is recovered by the next',
  { skip: cannotMount },
  async (t) => {
    const w = world(t);
    const r = (p: string): string => join(w.root, p);
    const ops: CrashOp[] = [
      { op: 'add', containerId: 'c1', storages: [eph(r('c1/e1')), eph(r('c1/e2'))] },
      { op: 'add', containerId: 'c2', storages: [eph(r('c2/e1')), watched(w, r('c2/w1'))] },
      { op: 'remove', containerId: 'c1' },
    ];
    const script: CrashScript = { statePath: w.statePath, allowedRoots: [w.root], ops };
    let recoveriesKilled = 0;
    // Agents killed in the middle of each call, then restarted agents killed in their recovery.
    for (const k of [4, 9, 14, 19, 24]) {
      runAgent(script, k);
      let j = 1;
      for (; runAgent({ ...script, ops: [] }, j).killed; j++) recoveriesKilled++;
      const { problems } = await recoverAndCheck(w, ops);
      t.same(problems, [], `killed at ${k}, then its recoveries at each of their ${j - 1} crash points`);
    }
    t.ok(recoveriesKilled > 5, `${recoveriesKilled} recoveries were killed half-way`);
  },
);

t.test('random request and release sequences, killed at a random step, recover', { skip: cannotMount }, async (t) => {
  const w = world(t);
  const points = ['a', 'b/c', 'b/d', 'w'];
  const storage = (i: number, shared: boolean): Storage =>
    points[i] === 'w' ? watched(w, join(w.root, 'w')) : eph(join(w.root, points[i]!), shared ? { shared } : {});
  const op = fc.oneof(
    fc
      .record({
        c: fc.integer({ min: 1, max: 3 }),
        picks: fc.uniqueArray(fc.integer({ min: 0, max: points.length - 1 }), { minLength: 1, maxLength: 3 }),
        shared: fc.boolean(),
      })
      .map(({ c, picks, shared }): CrashOp => ({
        op: 'add',
        containerId: `c${c}`,
        storages: picks.map((i) => storage(i, shared)),
      })),
    fc.integer({ min: 1, max: 3 }).map((c): CrashOp => ({ op: 'remove', containerId: `c${c}` })),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(op, { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 1, max: 80 }),
      async (ops, killAt) => {
        runAgent({ statePath: w.statePath, allowedRoots: [w.root], ops }, killAt);
        const { problems } = await recoverAndCheck(w, ops);
        if (problems.length > 0) throw new Error(problems.join('\n'));
      },
    ),
    { numRuns: 15 },
  );
  t.pass('every run recovered to a table matching the kernel');
});
