// Surviving an agent restart, step by step: an agent running Sandbox calls with a journal is
// killed (SIGKILL) at every crash point its requests and releases pass, one run per point, and a
// new Sandbox on the journal recovers each time. Checked against /proc/self/mountinfo and the tree
// (test/helpers/agent.ts check): the table matches the kernel, nothing of someone else's was
// touched, the runtime's retry behaves as if there had been no crash, destroy() leaves nothing.
import t from 'tap';
import { join } from 'node:path';
import { cannotMount } from '../helpers/mountinfo';
import { eph, watched, runAgent, world, recoverAndCheck, type CrashOp, type CrashScript } from '../helpers/agent';

// One agent and one recovery per crash point: the file's time grows with the points its script
// passes (about half a second each, more under ASan or a loaded machine).
t.setTimeout(600000);

t.test('a kill at every crash point of requests and releases recovers', { skip: cannotMount }, async (t) => {
  const w = world(t);
  const r = (p: string): string => join(w.root, p);
  const ops: CrashOp[] = [
    { op: 'add', containerId: 'c1', storages: [eph(r('c1/e1')), watched(w, r('c1/w1'))] },
    { op: 'add', containerId: 'c2', storages: [eph(r('pod/s1'), { shared: true }), eph(r('c1/e1'))] },
    { op: 'set', path: r('c1/e1') },
    { op: 'remove', containerId: 'c1' },
    { op: 'unset', path: r('c1/e1') },
    { op: 'remove', containerId: 'c2' },
    { op: 'unsetAndRemove', path: r('pod/s1') },
  ];
  const script: CrashScript = { statePath: w.statePath, allowedRoots: [w.root], ops };
  const seen = { adopted: 0, rolledBack: 0, dropped: 0 };
  let points = 0;
  for (let k = 1; k < 500; k++) {
    const { killed } = runAgent(script, k);
    const { report, problems } = await recoverAndCheck(w, ops);
    t.same(problems, [], `killed at crash point ${k}`);
    if (problems.length > 0) break;
    if (report.adopted.length > 0) seen.adopted++;
    if (report.rolledBack.length > 0) seen.rolledBack++;
    if (report.dropped.length > 0) seen.dropped++;
    if (!killed) {
      points = k - 1;
      break;
    }
  }
  t.ok(points > 20, `the script passed ${points} crash points, each one a kill and a recovery`);
  t.ok(
    seen.adopted > 0 && seen.rolledBack > 0,
    `recoveries adopted (${seen.adopted}) and rolled back (${seen.rolledBack})`,
  );
  t.comment(
    `crash points: ${points}; recoveries that adopted ${seen.adopted}, rolled back ${seen.rolledBack}, dropped ${seen.dropped}`,
  );
});
