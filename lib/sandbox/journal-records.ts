// What a Sandbox with `statePath` writes in its journal (journal.ts frames the lines), and when.
//
// Every call that changes the kernel is bracketed: a `begin` record before it touches anything,
// naming for each mount point it may create what a walk there reached then (`Pre`), and an `end`
// record once it settled, holding each entry it touched as it now is (or null: gone), the
// containers it changed, and the leftover directories. A `begin` without its `end` is a call cut
// off by the process's death; its `Pre`s are how recovery tells that call's mounts and
// directories from everything else. setSandboxStorage/unsetSandboxStorage change only counts and
// are one `ref`/`unref` record each. The journal is compacted into one `state` record (the whole
// table) when it has grown past its last state several times over, between calls.
//
// With a journal, the calls that change the kernel run one at a time (Kata's agents hold the
// sandbox lock across a request too), so an `end` never describes a call still half-way.
import { posix } from 'node:path';
import { crashPoint, mountIdAt } from '../native';
import type { Storage } from '../storage';
import { StorageDevice } from '../storage-device';
import type { StorageHandlerRegistry } from '../registry';
import type { Journal, JournalRecord } from './journal';

/** What the journal reads of the Sandbox's table (table.ts StorageTable). */
export interface JournaledTable {
  readonly entries: ReadonlyMap<string, StorageDevice>;
  readonly containers: ReadonlyMap<string, readonly Taken[]>;
  readonly leftovers: ReadonlyMap<string, boolean>;
  readonly settings: { readonly registry: StorageHandlerRegistry };
}

interface Taken {
  readonly path: string;
  readonly created: boolean;
}

/** An entry of the table as the journal keeps it. */
export interface EntrySnapshot {
  /** Mount point. */
  p: string;
  /** Driver ('' for a setSandboxStorage reference). */
  d: string;
  sh: boolean;
  /** Reference count. */
  n: number;
  /** The storage as it was added (what the driver's release and ephemeral updates read). */
  s?: Storage;
  /** Recorded mounts, oldest first: [path, mount ID]. */
  m: [string, number][];
  /** Paths created, in order. */
  c: string[];
  /** Those of `c` that are makeDirectory trees. */
  tr: string[];
  cmp: boolean;
  /** The driver's own release already ran. */
  rd: boolean;
  /** Held by nobody, its cleanup owed. */
  pend: boolean;
}

/**
 * Before a call may create `p`: `a` is the deepest path on the way to `p` (or `p` itself) that
 * existed, and `m` the ID of the mount a walk to `a` reached. Mounts stacked at `p` above `m`,
 * and directories below `a`, are the call's.
 */
export interface Pre {
  p: string;
  a: string;
  m: number;
}

/** [container ID, its references ([mount point, created])]; null references: it holds none now. */
export type ContainerRecord = [string, [string, boolean][] | null];

/** The table as one record: what compaction writes and what recovery starts from. */
export interface StateRecord extends JournalRecord {
  t: 'state';
  e: EntrySnapshot[];
  k: ContainerRecord[];
  lo: [string, boolean][];
}

export interface BeginRecord extends JournalRecord {
  t: 'begin';
  r: number;
  op: string;
  pre: Pre[];
}

/** More of a call's Pres, for targets a driver's create() reaches beyond its mount point. */
export interface PreRecord extends JournalRecord {
  t: 'pre';
  r: number;
  pre: Pre[];
}

export interface EndRecord extends JournalRecord {
  t: 'end';
  r: number;
  e: [string, EntrySnapshot | null][];
  k: ContainerRecord[];
  lo: [string, boolean][];
}

export interface RefRecord extends JournalRecord {
  t: 'ref';
  p: string;
  sh: boolean;
}

export interface UnrefRecord extends JournalRecord {
  t: 'unref';
  p: string;
}

export type TableRecord = StateRecord | BeginRecord | PreRecord | EndRecord | RefRecord | UnrefRecord;

export function snapshot(e: StorageDevice): EntrySnapshot {
  const s: EntrySnapshot = {
    p: e.path,
    d: e.driver,
    sh: e.shared,
    n: e.refcount,
    m: e.mounts.map((m) => [m.path, m.id]),
    c: [...e.created],
    tr: [...e.trees],
    cmp: e.createdMountPoint,
    rd: e.releaseDone,
    pend: e.cleanupPending,
  };
  if (e.storage !== undefined) s.s = storageOf(e.storage);
  return s;
}

/** The storage's request fields only: what a handler parsed from them is parsed again if needed. */
function storageOf(storage: Storage): Storage {
  const { driver, source, fstype, mountPoint } = storage;
  const s: Storage = { driver, source, fstype, mountPoint };
  if (storage.driverOptions !== undefined) s.driverOptions = storage.driverOptions;
  if (storage.options !== undefined) s.options = storage.options;
  if (storage.fsGroup !== undefined) s.fsGroup = storage.fsGroup;
  if (storage.shared !== undefined) s.shared = storage.shared;
  if (storage.layers !== undefined) s.layers = storage.layers.map(storageOf);
  return s;
}

/** An entry as it was snapshotted: its handler is the registry's for its driver, if any. */
export function restore(s: EntrySnapshot, table: JournaledTable): StorageDevice {
  const e = new StorageDevice(s.p, s.d, s.sh);
  e.refcount = s.n;
  if (s.s !== undefined) e.storage = s.s;
  const handler = s.d === '' ? undefined : table.settings.registry.get(s.d);
  if (handler !== undefined) e.handler = handler;
  e.mounts = s.m.map(([path, id]) => ({ path, id }));
  e.created = [...s.c];
  e.trees = new Set(s.tr);
  e.createdMountPoint = s.cmp;
  e.releaseDone = s.rd;
  e.cleanupPending = s.pend;
  return e;
}

const refsOf = (taken: readonly Taken[] | undefined): [string, boolean][] | null =>
  taken === undefined ? null : taken.map((t) => [t.path, t.created]);

/** The whole table as one record. */
export function stateRecord(table: JournaledTable): StateRecord {
  return {
    t: 'state',
    e: [...table.entries.values()].map(snapshot),
    k: [...table.containers].map(([c, refs]) => [c, refsOf(refs)]),
    lo: [...table.leftovers],
  };
}

/** Grows past this many times the bytes of its last compaction (and 64 KiB): compacted. */
const COMPACT_GROWTH = 4;
const COMPACT_MIN_BYTES = 64 * 1024;

/** The journal a Sandbox writes: its calls' records, each between two crash points. */
export class TableJournal {
  #next = 1;
  #compactedBytes: number;
  /** An `end` could not be written: the next call writes the whole state first. */
  #stale = false;

  constructor(
    readonly journal: Journal,
    readonly table: JournaledTable,
  ) {
    this.#compactedBytes = journal.bytes;
  }

  #append(record: TableRecord): void {
    crashPoint();
    this.journal.append(record);
    crashPoint();
  }

  /**
   * Before a call that may create `paths`: its `begin` record. Throws ERR_JOURNAL (nothing was
   * touched then). Returns the call's number for its `end`.
   */
  begin(op: string, paths: Iterable<string>): number {
    if (this.#stale) {
      this.compact();
      this.#stale = false;
    }
    const r = this.#next++;
    this.#append({ t: 'begin', r, op, pre: this.#pres(paths) });
    return r;
  }

  /** Before a driver's create() makes `path` (another target than its mount point). */
  pre(r: number, path: string): void {
    this.#append({ t: 'pre', r, pre: this.#pres([path]) });
  }

  #pres(paths: Iterable<string>): Pre[] {
    const pres: Pre[] = [];
    for (const p of paths) {
      const e = this.table.entries.get(p);
      // A held mount point only gains a reference: nothing is made there.
      if (e !== undefined && !(e.refcount === 0 && e.cleanupPending)) continue;
      pres.push(preOf(p));
    }
    return pres;
  }

  /**
   * After the call settled (succeeded or failed): each of `paths` as the table now has it, the
   * references of `containers`, the leftovers. A failure to write it does not change the call's
   * outcome: the journal is then behind, and the next call first writes the whole state (or
   * fails with ERR_JOURNAL before touching anything).
   */
  end(r: number, paths: Iterable<string>, containers: Iterable<string>): void {
    const e: [string, EntrySnapshot | null][] = [];
    for (const p of new Set(paths)) {
      const entry = this.table.entries.get(p);
      e.push([p, entry === undefined ? null : snapshot(entry)]);
    }
    const k: ContainerRecord[] = [];
    for (const c of new Set(containers)) k.push([c, refsOf(this.table.containers.get(c))]);
    try {
      this.#append({ t: 'end', r, e, k, lo: [...this.table.leftovers] });
      if (this.journal.bytes > Math.max(COMPACT_MIN_BYTES, COMPACT_GROWTH * this.#compactedBytes)) this.compact();
    } catch {
      this.#stale = true;
    }
  }

  /** setSandboxStorage's reference (before the table takes it, so a failure changes nothing). */
  ref(path: string, shared: boolean): void {
    this.#append({ t: 'ref', p: path, sh: shared });
  }

  /**
   * unsetSandboxStorage's, after the table changed: a failure to write it marks the journal
   * behind, as for an `end`, rather than failing a call that already took effect.
   */
  unref(path: string): void {
    try {
      this.#append({ t: 'unref', p: path });
    } catch {
      this.#stale = true;
    }
  }

  /** Closes the journal's descriptor; the file stays. */
  close(): void {
    this.journal.close();
  }

  /** The journal replaced by the table as it is now (write-aside, then rename). */
  compact(): void {
    crashPoint();
    this.journal.compact([stateRecord(this.table)]);
    crashPoint();
    this.#compactedBytes = this.journal.bytes;
  }
}

/** What a walk to `p` reaches now (Pre): the deepest existing path on the way and its mount. */
export function preOf(p: string): Pre {
  for (let a = p; ; a = posix.dirname(a)) {
    const m = mountIdAt(a);
    if (m !== undefined) return { p, a, m };
    if (a === '/') return { p, a, m: 0 };
  }
}
