// Model-checked stress: fast-check drives a Sandbox with random sequences of addStorages,
// removeContainer and destroy across containers and shared volumes, with failures injected (a
// driver that mounts then fails, a filesystem type that does not exist, a file held open so an
// unmount is EBUSY). After every step the real mountinfo and refcount() must equal a plain model.
import t from 'tap';
import fc from 'fast-check';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, defaultRegistry, type Storage } from '../lib/index';
import { cannotMount, mountsUnder, scratchDir } from './helpers/mountinfo';

const VOLUMES = 5;
const SHARED = new Set([0, 1]);
const CONTAINERS = ['c0', 'c1', 'c2', 'c3'];
type Item = number | 'fail' | 'nodev';

interface ModelEntry {
  refcount: number;
  shared: boolean;
  pending: boolean;
}

class Model {
  entries = new Map<number, ModelEntry>();
  containers = new Map<string, number[]>();
  busy = new Set<number>();

  // Returns false when cleanup failed (busy): the entry stays, marked.
  cleanup(v: number): boolean {
    const e = this.entries.get(v)!;
    if (this.busy.has(v)) {
      e.pending = true;
      return false;
    }
    this.entries.delete(v);
    return true;
  }

  release(v: number, evenShared: boolean): boolean {
    const e = this.entries.get(v);
    if (!e) return true;
    if (e.refcount > 0) e.refcount--;
    if (e.refcount > 0) return true;
    if (e.shared && !evenShared) return true;
    return this.cleanup(v);
  }

  add(cid: string, items: Item[]): boolean {
    const taken: { v: number; created: boolean }[] = [];
    let failed = false;
    for (const item of items) {
      if (typeof item !== 'number') {
        failed = true;
        break;
      }
      const e = this.entries.get(item);
      if (e && e.refcount === 0 && e.pending) {
        if (!this.cleanup(item)) {
          failed = true;
          break;
        }
      } else if (e) {
        e.refcount++;
        taken.push({ v: item, created: false });
        continue;
      }
      this.entries.set(item, { refcount: 1, shared: SHARED.has(item), pending: false });
      taken.push({ v: item, created: true });
    }
    if (failed) {
      for (const x of taken.reverse()) this.release(x.v, x.created);
      return false;
    }
    const refs = this.containers.get(cid) ?? [];
    refs.push(...taken.map((x) => x.v));
    this.containers.set(cid, refs);
    return true;
  }

  retryPending(): void {
    for (const [v, e] of [...this.entries]) {
      if (!e.pending) continue;
      if (e.refcount > 0) e.pending = false;
      else this.cleanup(v);
    }
  }

  remove(cid: string): boolean {
    const refs = this.containers.get(cid) ?? [];
    this.containers.delete(cid);
    let ok = true;
    for (const v of [...refs].reverse()) ok = this.release(v, false) && ok;
    this.retryPending();
    return ok;
  }

  destroy(): boolean {
    this.containers.clear();
    let ok = true;
    for (const [v, e] of [...this.entries]) {
      e.refcount = 0;
      ok = this.cleanup(v) && ok;
    }
    return ok;
  }
}

interface Real {
  sandbox: Sandbox;
  root: string;
  fds: Map<number, number>;
  steps: number;
}

const volPath = (root: string, v: number): string => join(root, `v${v}`);

function storageFor(root: string, item: Item): Storage {
  if (item === 'fail') return { driver: 'test-fail', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'fail') };
  if (item === 'nodev') return { driver: 'test-mount', source: 'none', fstype: 'kata-no-such-fs', mountPoint: join(root, 'nodev') };
  return { driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', options: ['size=64k'], mountPoint: volPath(root, item), shared: SHARED.has(item) };
}

async function settle<T>(p: Promise<T>): Promise<boolean> {
  try {
    await p;
    return true;
  } catch {
    return false;
  }
}

function check(m: Model, r: Real): void {
  r.steps++;
  const mounted = new Set(mountsUnder(r.root).map((x) => x.mountPoint));
  const expected = new Set([...m.entries.keys()].map((v) => volPath(r.root, v)));
  if ([...mounted].sort().join() !== [...expected].sort().join()) {
    throw new Error(`mountinfo ${[...mounted].sort().join()} but model ${[...expected].sort().join()}`);
  }
  for (let v = 0; v < VOLUMES; v++) {
    const want = m.entries.get(v)?.refcount ?? 0;
    const got = r.sandbox.refcount(volPath(r.root, v));
    if (got !== want) throw new Error(`refcount(v${v}) is ${got}, model says ${want}`);
    const info = r.sandbox.storages().get(volPath(r.root, v));
    if (Boolean(info) !== m.entries.has(v)) throw new Error(`storages() has v${v}: ${Boolean(info)}, model: ${m.entries.has(v)}`);
    if (info && info.cleanupPending !== m.entries.get(v)!.pending) {
      throw new Error(`v${v} cleanupPending ${info.cleanupPending}, model ${m.entries.get(v)!.pending}`);
    }
  }
}

class AddCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly cid: string, readonly items: Item[]) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const want = m.add(this.cid, this.items);
    const got = await settle(r.sandbox.addStorages(this.items.map((i) => storageFor(r.root, i)), { containerId: this.cid }));
    if (got !== want) throw new Error(`addStorages ${got ? 'succeeded' : 'failed'}, model says ${want ? 'success' : 'failure'}`);
    check(m, r);
  }
  toString(): string {
    return `add(${this.cid}, [${this.items.join(',')}])`;
  }
}

class RemoveCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly cid: string) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const want = m.remove(this.cid);
    const got = await settle(r.sandbox.removeContainer(this.cid));
    if (got !== want) throw new Error(`removeContainer ${got ? 'succeeded' : 'failed'}, model says ${want}`);
    check(m, r);
  }
  toString(): string {
    return `remove(${this.cid})`;
  }
}

class DestroyCommand implements fc.AsyncCommand<Model, Real> {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const want = m.destroy();
    const got = await settle(r.sandbox.destroy());
    if (got !== want) throw new Error(`destroy ${got ? 'succeeded' : 'failed'}, model says ${want}`);
    check(m, r);
  }
  toString(): string {
    return 'destroy()';
  }
}

class HoldCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly v: number) {}
  check(m: Readonly<Model>): boolean {
    return m.entries.has(this.v) && !m.busy.has(this.v);
  }
  async run(m: Model, r: Real): Promise<void> {
    m.busy.add(this.v);
    r.fds.set(this.v, openSync(join(volPath(r.root, this.v), 'held'), 'w'));
    check(m, r);
  }
  toString(): string {
    return `hold(v${this.v})`;
  }
}

class UnholdCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly v: number) {}
  check(m: Readonly<Model>): boolean {
    return m.busy.has(this.v);
  }
  async run(m: Model, r: Real): Promise<void> {
    m.busy.delete(this.v);
    closeSync(r.fds.get(this.v)!);
    r.fds.delete(this.v);
    check(m, r);
  }
  toString(): string {
    return `unhold(v${this.v})`;
  }
}

const item: fc.Arbitrary<Item> = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: VOLUMES - 1 }) },
  { weight: 1, arbitrary: fc.constant<Item>('fail') },
  { weight: 1, arbitrary: fc.constant<Item>('nodev') },
);
const cid = fc.constantFrom(...CONTAINERS);
const commands = [
  fc.tuple(cid, fc.array(item, { minLength: 1, maxLength: 4 })).map(([c, items]) => new AddCommand(c, items)),
  cid.map((c) => new RemoveCommand(c)),
  fc.integer({ min: 0, max: 9 }).filter((n) => n === 0).map(() => new DestroyCommand()),
  fc.integer({ min: 0, max: VOLUMES - 1 }).map((v) => new HoldCommand(v)),
  fc.integer({ min: 0, max: VOLUMES - 1 }).map((v) => new UnholdCommand(v)),
];

t.test('Sandbox matches its model under random operations and injected failures', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  const runs = Number(process.env.KATA_STRESS_RUNS ?? 150);
  let totalSteps = 0;
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.commands(commands, { maxCommands: 80, size: 'max' }), async (cmds) => {
      const root = join(dir, `run${run++}`);
      const registry = defaultRegistry();
      registry.register('test-fail', {
        async create(storage, ctx) {
          // Mounts, then fails: the rollback must take the mount down again.
          await ctx.makeMountPoint();
          await ctx.mount(storage.source, storage.mountPoint, storage.fstype, ['size=16k']);
          throw Object.assign(new Error('injected failure'), { code: 'ERR_TEST_INJECTED' });
        },
      });
      registry.register('test-mount', {
        async create(storage, ctx) {
          await ctx.makeMountPoint();
          await ctx.mount(storage.source, storage.mountPoint, storage.fstype, storage.options ?? []);
          return storage.mountPoint;
        },
      });
      const real: Real = { sandbox: new Sandbox({ registry, allowedRoots: [root] }), root, fds: new Map(), steps: 0 };
      try {
        await fc.asyncModelRun(() => ({ model: new Model(), real }), cmds);
      } finally {
        for (const fd of real.fds.values()) closeSync(fd);
        await real.sandbox.destroy().catch(() => undefined);
        totalSteps += real.steps;
      }
      if (mountsUnder(root).length !== 0) throw new Error(`left mounted after destroy: ${mountsUnder(root).map((m) => m.mountPoint)}`);
    }),
    { numRuns: runs, seed: process.env.KATA_STRESS_SEED ? Number(process.env.KATA_STRESS_SEED) : undefined },
  );
  t.ok(totalSteps >= runs, `${totalSteps} model-checked steps in ${runs} runs`);
  t.comment(`stress: ${totalSteps} steps, ${runs} runs`);
  t.same(mountsUnder(dir), [], 'nothing left mounted');
});
