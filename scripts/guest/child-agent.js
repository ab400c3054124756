// Runs inside the guest as a child of agent.js, playing an agent process that can be killed and
// started again: it opens a Sandbox on the journal at argv[2] (which reconciles what an earlier
// process left), reports the recovery, then serves the requests agent.js writes on its stdin.
// One JSON line each way:
//   in:  {"op":"add","storages":[...],"containerId":...}   {"op":"remove","containerId":...}
//   out: {"ev":"recovery","report":{...}}                  {"ev":"waiting","source":...}
//        {"ev":"done","op":...}                            {"ev":"failed","op":...,"code","message"}
// "waiting" is sent when a device wait starts (the wait tracing channel's start), so agent.js can
// kill this process while it waits for a disk the host has not plugged: the request's begin record
// is written, and nothing is made yet (the request is one job once its devices are found).
// Closing stdin ends it.
'use strict';
const readline = require('node:readline');
const ks = require('/opt/kata/node_modules/kata-storage');

const statePath = process.argv[2];

function send(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}
const errorOf = (e) => ({ code: e && e.code, message: e && e.message });

ks.storageTracing.wait.subscribe({ start: (c) => send({ ev: 'waiting', source: c.source }) });

const sandbox = new ks.Sandbox({ statePath, hotplugTimeoutMs: 60000 });
// The requests run one after another, as the agent's do, and only after the recovery settled.
let queue = sandbox.recovery.then((report) =>
  send({ ev: 'recovery', report: { ...report, errors: report.errors.map(errorOf) } }),
);

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line);
  queue = queue.then(async () => {
    try {
      if (req.op === 'add') await sandbox.addStorages(req.storages, { containerId: req.containerId });
      else if (req.op === 'remove') await sandbox.removeContainer(req.containerId);
      else throw new Error(`unknown op '${req.op}'`);
      send({ ev: 'done', op: req.op });
    } catch (e) {
      send({ ev: 'failed', op: req.op, ...errorOf(e) });
    }
  });
});
