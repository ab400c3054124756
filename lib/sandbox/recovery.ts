// A restarted agent's table, rebuilt from its journal and the kernel. Reading is synchronous and
// decides everything: each entry whose recorded mounts are all in place (same mount ID, same
// path) is adopted with its references and containers; one the kernel no longer has, wholly or
// in part, is dropped; a call cut off by the crash (a `begin` without its `end`) is rolled back.
// What that decided to undo runs afterwards, before the Sandbox's first call: the cut-off call's
// own mounts (stacked at its mount points above what was there when it began) and the
// directories it created, the dropped entries' remaining mounts and directories, and the cleanups
// owed before the crash. Anything the journal does not name is never touched.
import { posix } from 'node:path';
import { channels, type RecoveryReport } from '../events';
import { mountIdAt, native, recordedMountsPresent, releaseStorageJobs } from '../native';
import { StorageDevice } from '../storage-device';
import type { Journal, JournalRecord } from './journal';
import { TableJournal, restore, type EntrySnapshot, type Pre, type TableRecord } from './journal-records';
import { cleanup, retryLeftovers } from './release';
import type { StorageTable } from './table';

export type { RecoveryReport };

/** The table as the journal's records leave it, and the calls they leave open. */
interface Replayed {
  entries: Map<string, EntrySnapshot>;
  containers: Map<string, [string, boolean][]>;
  leftovers: Map<string, boolean>;
  /** The `Pre`s of each call without an `end`, in the order they began. */
  open: Map<number, Pre[]>;
}

function replay(records: readonly JournalRecord[], hasRelease: (driver: string) => boolean): Replayed {
  const out: Replayed = { entries: new Map(), containers: new Map(), leftovers: new Map(), open: new Map() };
  for (const rec of records as readonly TableRecord[]) {
    switch (rec.t) {
      case 'state':
        out.entries = new Map(rec.e.map((s) => [s.p, s]));
        out.containers = new Map(rec.k.filter((k): k is [string, [string, boolean][]] => k[1] !== null));
        out.leftovers = new Map(rec.lo);
        out.open.clear();
        break;
      case 'begin':
        out.open.set(rec.r, [...rec.pre]);
        break;
      case 'pre':
        out.open.get(rec.r)?.push(...rec.pre);
        break;
      case 'end':
        for (const [p, s] of rec.e) {
          if (s === null) out.entries.delete(p);
          else out.entries.set(p, s);
        }
        for (const [c, refs] of rec.k) {
          if (refs === null) out.containers.delete(c);
          else out.containers.set(c, refs);
        }
        out.leftovers = new Map(rec.lo);
        out.open.delete(rec.r);
        break;
      case 'ref': {
        const s = out.entries.get(rec.p);
        if (s !== undefined) s.n++;
        else {
          out.entries.set(rec.p, {
            p: rec.p,
            d: '',
            sh: rec.sh,
            n: 1,
            m: [],
            c: [],
            tr: [],
            cmp: false,
            rd: false,
            pend: false,
          });
        }
        break;
      }
      case 'unref': {
        // As StorageTable.unreference: a count that reaches zero forgets an entry with nothing
        // to undo and marks the others.
        const s = out.entries.get(rec.p);
        if (s === undefined || (s.n === 0 && !s.pend)) break;
        if (s.n > 0) s.n--;
        if (s.n > 0) break;
        if (s.m.length === 0 && s.c.length === 0 && !hasRelease(s.d)) out.entries.delete(rec.p);
        else s.pend = true;
        break;
      }
      default:
        // A record of a later version: what it says is not known here, and the rest is kept.
        break;
    }
  }
  return out;
}

/** The undoing recovery decided on, run by finish(). */
interface Undo {
  cutOff: Pre[];
  dropped: StorageDevice[];
  pending: StorageDevice[];
  adopted: StorageDevice[];
}

/**
 * Reads the journal's records into `table` (empty, fresh) against the kernel's mount table:
 * synchronous, so the Sandbox holds the adopted entries before its constructor returns. Returns
 * the report (its lists final) and what finish() is to undo.
 */
export function reconcile(
  table: StorageTable,
  records: readonly JournalRecord[],
  tornBytes: number,
): { report: RecoveryReport; undo: Undo } {
  const registry = table.settings.registry;
  const { entries, containers, leftovers, open } = replay(records, (d) => registry.get(d)?.release !== undefined);
  const report: RecoveryReport = { journal: true, adopted: [], rolledBack: [], dropped: [], errors: [], tornBytes };
  const undo: Undo = { cutOff: [], dropped: [], pending: [], adopted: [] };
  const restored = [...entries.values()].map((s) => restore(s, table));
  const all = restored.flatMap((e) => e.mounts);
  const present = recordedMountsPresent(all);
  let at = 0;
  for (const e of restored) {
    const here = present.slice(at, (at += e.mounts.length));
    if (here.every(Boolean)) {
      table.entries.set(e.path, e);
      if (e.cleanupPending) undo.pending.push(e);
      else {
        report.adopted.push(e.path);
        undo.adopted.push(e);
      }
    } else {
      report.dropped.push(e.path);
      undo.dropped.push(e);
    }
  }
  for (const [c, refs] of containers) {
    const held = refs.filter(([p]) => table.entries.has(p)).map(([path, created]) => ({ path, created }));
    if (held.length > 0) table.containers.set(c, held);
  }
  for (const [p, tree] of leftovers) table.leftovers.set(p, tree);
  for (const pres of open.values()) undo.cutOff.push(...pres);
  for (const pre of undo.cutOff) if (!report.rolledBack.includes(pre.p)) report.rolledBack.push(pre.p);
  return { report, undo };
}

/**
 * Carries out what reconcile() decided, newest first: the cut-off call's mounts and directories,
 * the dropped entries' remains, the cleanups owed; then the adopted entries' drivers resume
 * (StorageHandler.resume: watchable-bind's polling), and the journal is compacted to the table.
 * Never rejects: what fails is in `report.errors` and stays owed.
 */
export async function finish(
  table: StorageTable,
  journal: TableJournal,
  report: RecoveryReport,
  undo: Undo,
): Promise<RecoveryReport> {
  const recorded = new Set<number>();
  for (const e of table.entries.values()) for (const m of e.mounts) if (m.id !== 0) recorded.add(m.id);
  const heldPaths = [...table.entries.keys()];
  for (const pre of [...undo.cutOff].reverse()) await rollBack(table, pre, recorded, heldPaths, report.errors);
  if (undo.dropped.length > 0) {
    const outcomes = await releaseStorageJobs(undo.dropped, table.settings.umountBusyTimeoutMs);
    undo.dropped.forEach((e, i) => {
      const { error, leftovers } = e.settle(outcomes[i]!);
      if (error !== undefined) {
        // Still mounted in part: kept, held by nobody, for a later release or destroy() (or
        // joined to the entry a setSandboxStorage() made there meanwhile).
        table.keepUndone(e);
        report.errors.push(error);
      }
      for (const [p] of leftovers) table.leftovers.set(p, e.trees.has(p));
    });
  }
  for (const e of undo.pending) {
    await cleanup(table, e, 'release').catch((err: unknown) => void report.errors.push(err as Error));
  }
  await retryLeftovers(table);
  for (const e of undo.adopted) {
    if (e.handler?.resume === undefined || e.storage === undefined || table.entries.get(e.path) !== e) continue;
    try {
      await e.handler.resume(e.storage, {
        mounts: e.mounts,
        watchIntervalMs: table.settings.watchIntervalMs,
        mountApi: table.settings.mountApi,
      });
    } catch (err) {
      report.errors.push(err as Error);
    }
  }
  try {
    journal.compact();
  } catch (err) {
    report.errors.push(err as Error);
  }
  if (channels.recovery.hasSubscribers) channels.recovery.publish(report);
  return report;
}

/**
 * Undoes what a cut-off call made for `pre.p`: each mount stacked there above the one a walk
 * reached when the call began (with what sits on it), unless it is a mount the table records,
 * then each directory it created below `pre.a`, deepest first, when empty.
 */
async function rollBack(
  table: StorageTable,
  pre: Pre,
  recorded: ReadonlySet<number>,
  heldPaths: readonly string[],
  errors: Error[],
): Promise<void> {
  // A mount stacked on another is a descendant of it: one release takes both, so this loop
  // turns once per mount made at the path by the call (its own, and a driver's second one).
  for (let turn = 0; turn < 16; turn++) {
    const id = mountIdAt(pre.p);
    if (id === undefined || id === pre.m || recorded.has(id)) break;
    // The path is a directory inside some mount, not one's root: nothing is mounted there.
    if (native.isMountPoint(pre.p) !== true) break;
    const [outcome] = await releaseStorageJobs([{ mounts: [{ path: pre.p, id }], created: [] }], 0);
    if (outcome!.error !== undefined) {
      // Still mounted (EBUSY): owed, as a failed release is. The next add of this mount point
      // finishes it first, and a release or destroy() retries it; the journal records it.
      const e = new StorageDevice(pre.p, '', false);
      e.mounts = [{ path: pre.p, id }];
      e.created = madeBelow(pre).reverse();
      e.cleanupError = outcome!.error;
      table.keepUndone(e);
      errors.push(outcome!.error);
      return;
    }
  }
  for (const d of madeBelow(pre)) {
    // A directory on the way to a storage the table holds is that storage's.
    if (heldPaths.some((h) => h === d || h.startsWith(`${d}/`))) break;
    const err = await native.removeEntry(d);
    if (err === undefined || (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
    table.leftovers.set(d, false);
    if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY') errors.push(err);
    break;
  }
}

/** The directories a call may have created on its way to `pre.p`: those below `pre.a`, deepest first. */
function madeBelow(pre: Pre): string[] {
  const out: string[] = [];
  const below = `${pre.a === '/' ? '' : pre.a}/`;
  for (let d = pre.p; d !== pre.a && d.startsWith(below); d = posix.dirname(d)) out.push(d);
  return out;
}

/**
 * Opens the journal at `statePath` for a Sandbox whose table is empty: reads it, reconciles it
 * with the kernel, and returns the journal writer and the recovery to await before the first call.
 */
export function recover(
  table: StorageTable,
  opened: { journal: Journal; contents: { records: JournalRecord[]; tornBytes: number } },
): { journal: TableJournal; recovery: Promise<RecoveryReport> } {
  const { journal, contents } = opened;
  const writer = new TableJournal(journal, table);
  const { report, undo } = reconcile(table, contents.records, contents.tornBytes);
  return { journal: writer, recovery: finish(table, writer, report, undo) };
}
