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
import {
  TableJournal,
  restore,
  type ContainerRecord,
  type EntrySnapshot,
  type Pre,
  type TableRecord,
} from './journal-records';
import { cleanup, retryLeftovers } from './release';
import type { StorageTable } from './table';

export type { RecoveryReport };

/**
 * Plays the journal's records into `table` (fresh, empty) with the table's own operations, so a
 * reference taken or dropped is counted exactly as it was when it happened. Returns the `Pre`s of
 * each call without an `end`, in the order they began.
 */
function replay(table: StorageTable, records: readonly JournalRecord[]): Map<number, Pre[]> {
  const open = new Map<number, Pre[]>();
  const put = (p: string, s: EntrySnapshot | null): void => {
    if (s === null) table.entries.delete(p);
    else table.entries.set(p, restore(s, table));
  };
  const hold = ([c, refs]: ContainerRecord): void => {
    if (refs === null) table.containers.delete(c);
    else
      table.containers.set(
        c,
        refs.map(([path, created]) => ({ path, created })),
      );
  };
  for (const rec of records as readonly TableRecord[]) {
    switch (rec.t) {
      case 'state':
        table.entries.clear();
        table.containers.clear();
        for (const s of rec.e) put(s.p, s);
        rec.k.forEach(hold);
        table.leftovers.clear();
        for (const [p, tree] of rec.lo) table.leftovers.set(p, tree);
        open.clear();
        break;
      case 'begin':
        open.set(rec.r, [...rec.pre]);
        break;
      case 'pre':
        open.get(rec.r)?.push(...rec.pre);
        break;
      case 'end':
        for (const [p, s] of rec.e) put(p, s);
        rec.k.forEach(hold);
        table.leftovers.clear();
        for (const [p, tree] of rec.lo) table.leftovers.set(p, tree);
        open.delete(rec.r);
        break;
      case 'ref':
        table.reference(rec.p, rec.sh);
        break;
      case 'unref':
        // Written only once the table accepted it; after a journal that fell behind (an `end`
        // it could not write) the count may disagree, and the entry stays as recorded.
        try {
          table.unreference(rec.p);
        } catch {
          // ERR_STORAGE_NOT_FOUND: nothing to drop.
        }
        break;
      default:
        // A record of a later version: what it says is not known here, and the rest is kept.
        break;
    }
  }
  return open;
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
  const open = replay(table, records);
  const report: RecoveryReport = { journal: true, adopted: [], rolledBack: [], dropped: [], errors: [], tornBytes };
  const undo: Undo = { cutOff: [], dropped: [], pending: [], adopted: [] };
  const restored = [...table.entries.values()];
  const present = recordedMountsPresent(restored.flatMap((e) => e.mounts));
  let at = 0;
  for (const e of restored) {
    const here = present.slice(at, (at += e.mounts.length));
    if (!here.every(Boolean)) {
      table.entries.delete(e.path);
      report.dropped.push(e.path);
      undo.dropped.push(e);
    } else if (e.cleanupPending) undo.pending.push(e);
    else {
      report.adopted.push(e.path);
      undo.adopted.push(e);
    }
  }
  // A container's references to what was dropped go with it.
  for (const [c, refs] of table.containers) {
    const held = refs.filter((r) => table.entries.has(r.path));
    if (held.length === 0) table.containers.delete(c);
    else table.containers.set(c, held);
  }
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
