'use strict';
// The host's side of QEMU's machine protocol (QMP): commands answered by id, events kept until
// someone waits for them. The runner hot-plugs and unplugs the guest's disks through it.
const net = require('node:net');

/** A QMP client on the unix socket `sock`, logging every message sent and received to `log`. */
class Qmp {
  constructor(sock, log) {
    this.sock = sock;
    this.log = log;
    this.id = 0;
    this.pending = new Map();
    this.events = [];
    this.waiters = [];
  }
  /** Connects (retrying for 10 s while QEMU creates the socket) and negotiates capabilities. */
  async connect() {
    for (let i = 0; i < 200; i++) {
      try {
        this.conn = await new Promise((res, rej) => {
          const c = net.createConnection(this.sock, () => res(c));
          c.once('error', rej);
        });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    if (!this.conn) throw new Error(`QMP socket ${this.sock} never accepted`);
    let buf = '';
    this.conn.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        this.log(`QMP <- ${line}`);
        const msg = JSON.parse(line);
        if (msg.id !== undefined && this.pending.has(msg.id)) {
          this.pending.get(msg.id)(msg);
          this.pending.delete(msg.id);
        } else if (msg.event) {
          this.events.push(msg);
          for (const w of this.waiters.splice(0)) w();
        }
      }
    });
    this.conn.on('error', () => {});
    await this.cmd('qmp_capabilities');
  }
  /** Sends `execute` with `args`; resolves to its `return`, rejects with QEMU's error `desc`. */
  cmd(execute, args) {
    const id = ++this.id;
    const msg = JSON.stringify(args ? { execute, arguments: args, id } : { execute, id });
    this.log(`QMP -> ${msg}`);
    return new Promise((res, rej) => {
      this.pending.set(id, (r) => (r.error ? rej(new Error(`${execute}: ${r.error.desc}`)) : res(r.return)));
      this.conn.write(`${msg}\n`);
    });
  }
  /** The first event (kept or yet to come) `pred` accepts, removed from the queue; null after `ms` ms. */
  async event(pred, ms) {
    const until = Date.now() + ms;
    for (;;) {
      const i = this.events.findIndex(pred);
      if (i >= 0) return this.events.splice(i, 1)[0];
      if (Date.now() > until) return null;
      await new Promise((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }
}

module.exports = { Qmp };
