// examples/ run as a user runs them: the guest-agent flow, against the package's own exports.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, packageRoot } from '../helpers/build';
import { cannotMount, mountSnapshot, scratchDir } from '../helpers/mountinfo';

const agent = join(packageRoot, 'examples', 'agent.js');

t.test(
  'examples/agent.js: CreateSandbox, CreateContainer x2, RemoveContainer x2, DestroySandbox',
  { skip: cannotMount },
  async (t) => {
    ensureBuilt();
    const before = mountSnapshot();
    const r = spawnSync(process.execPath, [agent], { encoding: 'utf8', cwd: packageRoot });
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stderr, '');
    t.match(
      r.stdout,
      /CreateContainer app\n {4}created local sandbox\/local\/cache\n {4}created ephemeral app\/scratch\n {2}mounted: sandbox\/shm \(tmpfs\), app\/scratch \(tmpfs\)/,
    );
    t.match(r.stdout, /CreateContainer sidecar\n {4}referenced local sandbox\/local\/cache/);
    t.match(r.stdout, /RemoveContainer app\n {2}mounted: sandbox\/shm \(tmpfs\)\n/);
    t.match(r.stdout, /DestroySandbox\n {2}mounted: nothing\ndone: nothing left mounted\n$/);
    t.equal(mountSnapshot(), before);
  },
);

t.test('examples/agent.js reports a refused request once and exits 1', { skip: cannotMount }, async (t) => {
  ensureBuilt();
  const file = join(scratchDir(t, 'kata-agent-req-'), 'requests.json');
  writeFileSync(
    file,
    JSON.stringify([
      {
        method: 'CreateContainer',
        request: {
          container_id: 'x',
          storages: [{ driver: 'local', source: 'local', fstype: 'local', mount_point: '/etc/x' }],
        },
      },
    ]),
  );
  const r = spawnSync(process.execPath, [agent, file], { encoding: 'utf8', cwd: packageRoot });
  t.equal(r.status, 1);
  t.match(r.stderr, /^agent example: ERR_INVALID_STORAGE: storage mountPoint .*outside the allowed roots/);
  t.equal(r.stderr.split('ERR_INVALID_STORAGE').length, 2, 'the code once');
});

t.test(
  'examples/agent.js reports a storage the kernel refuses once, and leaves nothing',
  { skip: cannotMount },
  async (t) => {
    ensureBuilt();
    const dir = scratchDir(t, 'kata-agent-fail-');
    const root = join(dir, 'root');
    const file = join(dir, 'requests.json');
    // tmpfs refuses a size it cannot read (EINVAL from the mount itself, after validation passed),
    // with the example's storage tracing subscribed: its asyncEnd follows the failure too.
    const storage = { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: ['size=lots'] };
    writeFileSync(
      file,
      JSON.stringify([
        {
          method: 'CreateContainer',
          request: { container_id: 'x', storages: [{ ...storage, mount_point: `${root}/x/e` }] },
        },
      ]),
    );
    const before = mountSnapshot();
    const r = spawnSync(process.execPath, [agent, file, '--root', root], { encoding: 'utf8', cwd: packageRoot });
    t.equal(r.status, 1, r.stderr);
    t.notMatch(r.stderr, /TypeError/, 'no crash in the tracing subscriber');
    t.match(r.stderr, /^agent example: EINVAL/);
    t.equal(r.stderr.split('EINVAL').length, 2, 'the error once');
    t.equal(mountSnapshot(), before, 'nothing left mounted');
  },
);
