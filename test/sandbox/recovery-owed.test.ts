// Surviving an agent restart around a cleanup left owed (an unmount that failed with EBUSY, then
// finished by the next add of the mount point): the agent is killed at every crash point, one run
// per point, and a new Sandbox on the journal recovers each time, checked as test/helpers/agent.ts
// check does.
import t from 'tap';
import { join } from 'node:path';
import { cannotMount } from '../helpers/mountinfo';
import { eph, runAgent, world, recoverAndCheck, type CrashOp, type CrashScript } from '../helpers/agent';

// One agent and one recovery per crash point: the file's time grows with the points its script
// passes (about half a second each, more under ASan or a loaded machine).
t.setTimeout(600000);

t.test('a kill at every crash point around a cleanup left owed recovers', { skip: cannotMount }, async (t) => {
  const w = world(t);
  const e1 = join(w.root, 'c1', 'e1');
  // c1's release fails (EBUSY: a file open in it), leaving the storage owed; c2's add of the same
  // mount point finishes that cleanup first, then mounts it anew; then c2 goes.
  const ops: CrashOp[] = [
    { op: 'add', containerId: 'c1', storages: [eph(e1)] },
    { op: 'hold', path: e1 },
    { op: 'remove', containerId: 'c1' },
    { op: 'let-go' },
    { op: 'add', containerId: 'c2', storages: [eph(e1)] },
    { op: 'remove', containerId: 'c2' },
  ];
  const script: CrashScript = { statePath: w.statePath, allowedRoots: [w.root], ops };
  let points = 0;
  for (let k = 1; k < 200; k++) {
    const { killed } = runAgent(script, k);
    const { problems } = await recoverAndCheck(w, ops);
    t.same(problems, [], `killed at crash point ${k}`);
    if (problems.length > 0 || !killed) {
      points = k - 1;
      break;
    }
  }
  t.ok(points > 8, `the script passed ${points} crash points`);
});
