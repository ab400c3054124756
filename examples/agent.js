#!/usr/bin/env node
// The storage part of a guest agent: the requests Kata's runtime sends (agent.proto
// CreateSandbox / CreateContainer / RemoveContainer / DestroySandbox, as protobuf JSON with the
// proto field names) handled with one Sandbox, as kata-agent's rpc.rs does with its storage
// handlers. Run as root in a private mount namespace:
//
//   unshare -m --propagation private node examples/agent.js [requests.json]
//
// requests.json is an array of { "method": "...", "request": { ... } }; without it the flow below
// runs under a temporary directory standing in for /run/kata-containers. It prints each request,
// the mounts it made, and at the end proves nothing is left mounted.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Sandbox, storageTracing } = require('kata-storage');

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kata-agent-example-'));
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

async function main() {
  const requests = process.argv[2] ? JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) : defaultRequests;
  const sandbox = new Sandbox({ allowedRoots: [root] });
  // What an agent would log: each storage as it is taken, reference-only adds included.
  storageTracing.storage.subscribe({
    asyncEnd: (c) =>
      console.log(
        `    ${c.result.taken.created ? 'created' : 'referenced'} ${c.driver} ${path.relative(root, c.mountPoint)}`,
      ),
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
      console.log(`  mounted: ${mountsUnder(root).join(', ') || 'nothing'}`);
    }
  } finally {
    await sandbox.destroy();
  }
  const left = mountsUnder(root);
  fs.rmSync(root, { recursive: true, force: true });
  if (left.length > 0) throw new Error(`left mounted: ${left.join(', ')}`);
  console.log('done: nothing left mounted');
}

main().catch((err) => {
  const coded = err.code && !err.message.startsWith(`${err.code}:`) ? `${err.code}: ` : '';
  console.error(`agent example: ${coded}${err.message}`);
  process.exitCode = 1;
});
