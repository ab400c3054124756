// Model-checked stress: fast-check drives a Sandbox with random sequences of addStorages,
// removeContainer and destroy across containers and shared volumes, with failures injected (a
// driver that mounts then fails, a filesystem type that does not exist, a file held open so an
// unmount is EBUSY, the root remounted read-only so directories can be neither made nor removed).
// After every step the real mountinfo, refcount(), storages() and the directories under the root
// must equal a plain model. A destroyed sandbox refuses adds; once destroy() left nothing behind
// the run goes on with a fresh Sandbox.
import t from 'tap';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, defaultRegistry, mountSync, umountSync, type Storage } from '../../lib/index';
import { cannotMount, mountsUnder, scratchDir } from '../helpers/mountinfo';

const VOLUMES = 5;
const SHARED = new Set([0, 1]);
const CONTAINERS = ['c0', 'c1', 'c2', 'c3'];
type Item = number | 'fail' | 'nodev';
type Key = number | 'fail' | 'nodev';

interface ModelEntry {
  refcount: number;
  shared: boolean;
  pending: boolean;
}

class Model {
  entries = new Map<number, ModelEntry>();
  containers = new Map<string, number[]>();
  busy = new Set<number>();
  /** The run's root is mounted read-only: mkdir and rmdir below it fail with EROFS. */
  frozen = false;
  destroyed = false;
  /** Directories under the root (v<n>, fail, nodev). */
  dirs = new Set<Key>();
  /** Those the sandbox created but could not remove: removed by a later cleanup or taken over. */
  leftovers = new Set<Key>();

  // Best effort: a directory that cannot go stays as a leftover.
  removeDir(k: Key): void {
    if (this.frozen) this.leftovers.add(k);
    else this.dirs.delete(k);
  }

  retryLeftovers(): void {
    if (this.frozen) return;
    for (const k of [...this.leftovers]) {
      if (typeof k === 'number' && this.entries.has(k)) continue;
      this.leftovers.delete(k);
      this.dirs.delete(k);
    }
  }

  // Makes the mount point: an existing leftover is taken over, a missing one made (EROFS when frozen).
  makeDir(k: Key): boolean {
    if (this.leftovers.delete(k)) return true;
    if (this.dirs.has(k)) return true;
    if (this.frozen) return false;
    this.dirs.add(k);
    return true;
  }

  // Returns false when cleanup failed (the unmount is busy): the entry stays, marked.
  cleanup(v: number): boolean {
    const e = this.entries.get(v)!;
    if (this.busy.has(v)) {
      e.pending = true;
      return false;
    }
    this.entries.delete(v);
    this.removeDir(v);
    this.retryLeftovers();
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
    if (this.destroyed) return false;
    // A request of built-in storages alone is one native job: the cleanups owed at its mount
    // points are finished first, before anything is made, and one that fails fails the request
    // having made nothing (lib/sandbox/job.ts addWhenFree). A request with an injected failure
    // (a custom driver) is made storage by storage, as the loop below models.
    if (items.every((i) => typeof i === 'number')) {
      for (const v of new Set(items)) {
        const e = this.entries.get(v);
        if (e && e.refcount === 0 && e.pending && !this.cleanup(v)) return false;
      }
    }
    const taken: { v: number; created: boolean }[] = [];
    let failed = false;
    for (const item of items) {
      if (typeof item !== 'number') {
        // Both injected failures make their mount point, then fail and roll it back.
        if (this.makeDir(item)) {
          this.removeDir(item);
          this.retryLeftovers();
        }
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
      if (!this.makeDir(item)) {
        this.retryLeftovers(); // the rollback of the failed storage itself
        failed = true;
        break;
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
    this.retryLeftovers();
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
    this.destroyed = true;
    this.containers.clear();
    let ok = true;
    for (const [v, e] of [...this.entries]) {
      e.refcount = 0;
      ok = this.cleanup(v) && ok;
    }
    this.retryLeftovers();
    return ok;
  }

  /** Nothing left for the destroyed sandbox to retry: the run may go on with a new one. */
  renewable(): boolean {
    return this.destroyed && this.entries.size === 0 && this.leftovers.size === 0;
  }
}

interface Real {
  sandbox: Sandbox;
  makeSandbox: () => Sandbox;
  root: string;
  fds: Map<number, number>;
  steps: number;
}

const volPath = (root: string, v: number): string => join(root, `v${v}`);
const dirName = (k: Key): string => (typeof k === 'number' ? `v${k}` : k);

function storageFor(root: string, item: Item): Storage {
  if (item === 'fail') return { driver: 'test-fail', source: 'tmpfs', fstype: 'tmpfs', mountPoint: join(root, 'fail') };
  if (item === 'nodev')
    return { driver: 'test-mount', source: 'none', fstype: 'kata-no-such-fs', mountPoint: join(root, 'nodev') };
  return {
    driver: 'ephemeral',
    source: 'tmpfs',
    fstype: 'tmpfs',
    options: ['size=64k'],
    mountPoint: volPath(root, item),
    shared: SHARED.has(item),
  };
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
  const dirs = readdirSync(r.root).sort().join();
  const want = [...m.dirs].map(dirName).sort().join();
  if (dirs !== want) throw new Error(`directories ${dirs} but model ${want}`);
  const mounted = new Set(
    mountsUnder(r.root)
      .map((x) => x.mountPoint)
      .filter((p) => p !== r.root),
  );
  const expected = new Set([...m.entries.keys()].map((v) => volPath(r.root, v)));
  if ([...mounted].sort().join() !== [...expected].sort().join()) {
    throw new Error(`mountinfo ${[...mounted].sort().join()} but model ${[...expected].sort().join()}`);
  }
  for (let v = 0; v < VOLUMES; v++) {
    const want = m.entries.get(v)?.refcount ?? 0;
    const got = r.sandbox.refcount(volPath(r.root, v));
    if (got !== want) throw new Error(`refcount(v${v}) is ${got}, model says ${want}`);
    const info = r.sandbox.storages().get(volPath(r.root, v));
    if (Boolean(info) !== m.entries.has(v))
      throw new Error(`storages() has v${v}: ${Boolean(info)}, model: ${m.entries.has(v)}`);
    if (info && info.cleanupPending !== m.entries.get(v)!.pending) {
      throw new Error(`v${v} cleanupPending ${info.cleanupPending}, model ${m.entries.get(v)!.pending}`);
    }
  }
}

class AddCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly cid: string,
    readonly items: Item[],
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const want = m.add(this.cid, this.items);
    const got = await settle(
      r.sandbox.addStorages(
        this.items.map((i) => storageFor(r.root, i)),
        { containerId: this.cid },
      ),
    );
    if (got !== want)
      throw new Error(`addStorages ${got ? 'succeeded' : 'failed'}, model says ${want ? 'success' : 'failure'}`);
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
    if (got !== want)
      throw new Error(`destroy ${got ? 'succeeded' : 'failed'}, model says ${want ? 'success' : 'failure'}`);
    check(m, r);
    if (m.renewable()) {
      r.sandbox = r.makeSandbox();
      m.destroyed = false;
    }
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

class FreezeCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly frozen: boolean) {}
  check(m: Readonly<Model>): boolean {
    return m.frozen !== this.frozen;
  }
  async run(m: Model, r: Real): Promise<void> {
    m.frozen = this.frozen;
    execFileSync('mount', ['-o', `remount,${this.frozen ? 'ro' : 'rw'}`, r.root]);
    check(m, r);
  }
  toString(): string {
    return this.frozen ? 'freeze()' : 'thaw()';
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
  fc
    .integer({ min: 0, max: 9 })
    .filter((n) => n === 0)
    .map(() => new DestroyCommand()),
  fc.integer({ min: 0, max: VOLUMES - 1 }).map((v) => new HoldCommand(v)),
  fc.integer({ min: 0, max: VOLUMES - 1 }).map((v) => new UnholdCommand(v)),
  fc.boolean().map((frozen) => new FreezeCommand(frozen)),
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
      // The root is a tmpfs of its own so it can be remounted read-only.
      mkdirSync(root);
      mountSync('tmpfs', root, 'tmpfs', ['size=1m']);
      const makeSandbox = (): Sandbox => new Sandbox({ registry, allowedRoots: [root] });
      const real: Real = { sandbox: makeSandbox(), makeSandbox, root, fds: new Map(), steps: 0 };
      try {
        await fc.asyncModelRun(() => ({ model: new Model(), real }), cmds);
      } finally {
        for (const fd of real.fds.values()) closeSync(fd);
        execFileSync('mount', ['-o', 'remount,rw', root]);
        await real.sandbox.destroy().catch(() => undefined);
        totalSteps += real.steps;
      }
      const left = mountsUnder(root).filter((m) => m.mountPoint !== root);
      umountSync(root);
      if (left.length !== 0) throw new Error(`left mounted after destroy: ${left.map((m) => m.mountPoint)}`);
    }),
    { numRuns: runs, seed: process.env.KATA_STRESS_SEED ? Number(process.env.KATA_STRESS_SEED) : undefined },
  );
  t.ok(totalSteps >= runs, `${totalSteps} model-checked steps in ${runs} runs`);
  t.comment(`stress: ${totalSteps} steps, ${runs} runs`);
  t.same(mountsUnder(dir), [], 'nothing left mounted');
});
