#!/usr/bin/env node
// The storage part of a guest agent: the requests Kata's runtime sends (agent.proto
// CreateSandbox / CreateContainer / RemoveContainer / DestroySandbox, as protobuf JSON with the
// proto field names) handled with one Sandbox, as kata-agent's rpc.rs does with its storage
// handlers. Run as root in a private mount namespace:
//
//   unshare -m --propagation private node examples/agent.js [requests.json] [--root DIR]
//
// requests.json is an array of { "method": "...", "request": { ... } } with the storages' mount
// points under --root (default /run/kata-containers, where Kata's runtime puts them); without a
// file, the flow below runs under a new temporary directory standing in for /run/kata-containers
// (or under --root when given). It prints each request, the mounts it made, and at the end proves
// nothing is left mounted.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { Sandbox, storageTracing } = require('kata-storage');

const usage = 'usage: node examples/agent.js [requests.json] [--root DIR]';
let args;
try {
  args = parseArgs({
    options: { root: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (args.positionals.length > 1) throw new Error(`unexpected argument '${args.positionals[1]}'`);
  if (args.values.root !== undefined && !path.isAbsolute(args.values.root))
    throw new Error(`--root must be an absolute path, got '${args.values.root}'`);
} catch (err) {
  console.error(`agent example: ${err.message}\n${usage}`);
  process.exit(2);
}
if (args.values.help) {
  console.log(usage);
  process.exit(0);
}
const file = args.positionals[0];
// The allowed root: the directory Kata's requests name, unless --root says otherwise. Only a
// directory made here is removed at the end; /run/kata-containers or a --root is left as found.
const made = file === undefined && args.values.root === undefined;
const root = made
  ? fs.mkdtempSync(path.join(os.tmpdir(), 'kata-agent-example-'))
  : path.resolve(args.values.root ?? '/run/kata-containers');
const at = (...p) => path.join(root, ...p);

// The emptyDir both containers use: the runtime sends the same storage in each container's request,
// and the agent mounts it once and counts the references.
const cache = {
  driver: 'local',
  source: 'local',
  fstype: 'local',
  options: ['mode=0777', 'fsgid=2000'],
  mount_point: at('sandbox', 'local', 'cache'),
};

// What the runtime sends for a pod with a shared /dev/shm, an emptyDir used by two containers and
// a memory-backed scratch volume for the first one.
const defaultRequests = [
  {
    method: 'CreateSandbox',
    request: {
      sandbox_id: 'pod',
      storages: [
        {
          driver: 'ephemeral',
          source: 'shm',
          fstype: 'tmpfs',
          options: ['noexec,nosuid,nodev', 'mode=1777', 'size=64m'],
          mount_point: at('sandbox', 'shm'),
        },
      ],
    },
  },
  {
    method: 'CreateContainer',
    request: {
      container_id: 'app',
      storages: [
        cache,
        {
          driver: 'ephemeral',
          source: 'tmpfs',
          fstype: 'tmpfs',
          options: ['size=16m'],
          mount_point: at('app', 'scratch'),
          fs_group: { group_id: 2000, group_change_policy: 1 },
        },
      ],
    },
  },
  {
    method: 'CreateContainer',
    request: {
      container_id: 'sidecar',
      storages: [cache],
    },
  },
  { method: 'RemoveContainer', request: { container_id: 'app', timeout: 0 } },
  { method: 'RemoveContainer', request: { container_id: 'sidecar', timeout: 0 } },
  { method: 'DestroySandbox', request: {} },
];

function mountsUnder(dir) {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[4] === dir || (f[4] || '').startsWith(`${dir}/`))
    .map((f) => `${f[4].slice(root.length + 1)} (${f[f.indexOf('-') + 1]})`);
}

// What was mounted under the root before (a real guest's /run/kata-containers may hold mounts):
// neither shown as ours nor counted as left behind.
const before = new Set(mountsUnder(root));
const ours = () => mountsUnder(root).filter((m) => !before.has(m));

async function main() {
  const requests = file === undefined ? defaultRequests : JSON.parse(fs.readFileSync(file, 'utf8'));
  const sandbox = new Sandbox({ allowedRoots: [root] });
  // What an agent would log: each storage as it is taken, reference-only adds included. asyncEnd
  // follows a failure too (after `error`, with no result): the request's error is reported below.
  storageTracing.storage.subscribe({
    asyncEnd: (c) => {
      if (c.error !== undefined) return;
      console.log(
        `    ${c.result.taken.created ? 'created' : 'referenced'} ${c.driver} ${path.relative(root, c.mountPoint)}`,
      );
    },
  });
  try {
    for (const { method, request } of requests) {
      console.log(`${method} ${request.container_id ?? request.sandbox_id ?? ''}`.trimEnd());
      switch (method) {
        case 'CreateSandbox':
          // Sandbox-level storages belong to no container: they stay until DestroySandbox.
          await sandbox.addStorages(request.storages ?? []);
          break;
        case 'CreateContainer':
          await sandbox.addStorages(request.storages ?? [], { containerId: request.container_id });
          break;
        case 'RemoveContainer':
          await sandbox.removeContainer(request.container_id);
          break;
        case 'DestroySandbox':
          await sandbox.destroy();
          break;
        default:
          throw new Error(`unknown method ${method}`);
      }
      console.log(`  mounted: ${ours().join(', ') || 'nothing'}`);
    }
  } finally {
    await sandbox.destroy();
  }
  const left = ours();
  if (made) fs.rmSync(root, { recursive: true, force: true });
  if (left.length > 0) throw new Error(`left mounted: ${left.join(', ')}`);
  console.log('done: nothing left mounted');
}

main().catch((err) => {
  const coded = err.code && !err.message.startsWith(`${err.code}:`) ? `${err.code}: ` : '';
  console.error(`agent example: ${coded}${err.message}`);
  process.exitCode = 1;
});
