// The append-only record file a Sandbox keeps with `statePath`, so a restarted agent can tell
// what it had mounted. Only the framing lives here: what the records say is the Sandbox's.
//
// One record per line: 16 hex digits of the SHA-256 of the JSON, a space, the JSON, "\n",
// appended with one write(2) on an O_APPEND descriptor. A record counts when its line is whole
// and its digest matches; reading stops at the first one that does not, so a process killed in
// the middle of an append (at any byte) leaves a file that reads to the last whole record, and
// opening cuts the torn tail off before anything is appended after it.
//
// Append plus a digest rather than write-aside plus rename for each change: a request costs one
// short write instead of rewriting the whole table (at a thousand storages, kilobytes per
// request). Compaction is the write-aside: the state as one record into `<path>.tmp`, then
// rename(2) over the journal, which leaves either the old file or the new one whole.
//
// Node opens every descriptor close-on-exec. No fsync: the journal belongs on the guest's tmpfs (/run), where a write(2) that returned is
// seen by the next process whatever kills this one; a guest that dies takes its mounts with it.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, renameSync, writeSync, constants } from 'node:fs';
import { StorageError } from '../errors';
import { native } from '../native';

/** A journal record: any JSON object; `t` says what kind of record it is. */
export interface JournalRecord {
  readonly t: string;
  readonly [field: string]: unknown;
}

/** What reading a journal found. */
export interface JournalContents {
  /** The whole records, oldest first. */
  records: JournalRecord[];
  /** Bytes after the last whole record: a torn append, cut off when opened to write. */
  tornBytes: number;
  /**
   * Where the first record that is not whole starts, when what follows it is not a torn append
   * (another line after it, or bytes no record starts with): damage, or a file that is not a
   * journal. Journal.open refuses such a file.
   */
  damagedAt?: number;
}

const DIGEST_HEX = 16;

function digest(json: string): string {
  return createHash('sha256').update(json).digest('hex').slice(0, DIGEST_HEX);
}

/** One record as its line in the file. */
export function journalLine(record: JournalRecord): string {
  const json = JSON.stringify(record);
  return `${digest(json)} ${json}\n`;
}

/**
 * Reads a journal's whole records from its bytes: each line `<digest> <json>` whose digest
 * matches and whose JSON is an object with a string `t`, up to the first that is not.
 */
export function parseJournal(bytes: Buffer): JournalContents {
  const records: JournalRecord[] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf(0x0a, at);
    if (end < 0) break;
    const line = bytes.toString('utf8', at, end);
    const space = line.indexOf(' ');
    if (space !== DIGEST_HEX) break;
    const json = line.slice(space + 1);
    if (digest(json) !== line.slice(0, space)) break;
    let record: unknown;
    try {
      record = JSON.parse(json);
    } catch {
      break;
    }
    if (typeof record !== 'object' || record === null || typeof (record as { t?: unknown }).t !== 'string') break;
    records.push(record as JournalRecord);
    at = end + 1;
  }
  const contents: JournalContents = { records, tornBytes: bytes.length - at };
  if (at < bytes.length && !tornAppend(bytes.subarray(at))) contents.damagedAt = at;
  return contents;
}

/**
 * Whether the bytes after the last whole record are what an append killed half-way leaves: the
 * start of one line (no newline in it) as journalLine() begins every line, hex digits, a space,
 * then the JSON's opening brace.
 */
function tornAppend(tail: Buffer): boolean {
  if (tail.includes(0x0a)) return false;
  const head = tail.toString('latin1', 0, DIGEST_HEX + 2);
  return /^[0-9a-f]{0,16}$|^[0-9a-f]{16} $|^[0-9a-f]{16} \{/.test(head);
}

/** An open journal: appends whole records to `path`. */
export class Journal {
  readonly path: string;
  #fd: number;
  #bytes: number;

  #lock: number;

  private constructor(path: string, fd: number, bytes: number, lock: number) {
    this.path = path;
    this.#fd = fd;
    this.#bytes = bytes;
    this.#lock = lock;
  }

  /**
   * Opens (or creates, mode 0600) the journal at `path`, takes its lock, and reads it. A torn
   * tail is cut off (ftruncate) so the next append starts a line of its own.
   * The lock is flock(2) on `<path>.lock`, held until close() (the kernel drops it when the
   * process dies): two writers would each lose records to the other's compaction.
   * @throws StorageError `ERR_JOURNAL` naming `path` when it cannot be opened, read or cut (the
   *   system error is its `cause`), when another open journal (this process's or another's)
   *   holds its lock (`locked: true`), or when it is damaged or not a journal (`damagedAt`, the
   *   byte where its first record that is not whole starts): nothing is changed then.
   */
  static open(path: string): { journal: Journal; contents: JournalContents } {
    let fd = -1;
    let lock = -1;
    try {
      lock = openSync(`${path}.lock`, constants.O_RDWR | constants.O_CREAT, 0o600);
      const locked = native.lockFile(lock);
      if (locked instanceof Error) throw locked;
      if (!locked) {
        throw new StorageError(
          'ERR_JOURNAL',
          `the storage journal ${path} is in use by another Sandbox (in this process or another): one Sandbox per statePath; a restarted agent waits for the old one to exit`,
          { value: path, cause: undefined, locked: true },
        );
      }
      fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND, 0o600);
      const bytes = readFileSync(fd);
      const contents = parseJournal(bytes);
      if (contents.damagedAt !== undefined) {
        throw new StorageError(
          'ERR_JOURNAL',
          `the storage journal ${path} is damaged, or not a journal: its record at byte ${contents.damagedAt} is not whole and more follows. Nothing was changed; move the file aside to start without it (what it recorded stays mounted)`,
          { value: path, cause: undefined, damagedAt: contents.damagedAt },
        );
      }
      const whole = bytes.length - contents.tornBytes;
      if (contents.tornBytes > 0) ftruncateSync(fd, whole);
      return { journal: new Journal(path, fd, whole, lock), contents };
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      if (lock >= 0) closeSync(lock);
      if (e instanceof StorageError) throw e;
      throw journalError(path, 'open', e);
    }
  }

  /** Bytes of whole records in the file. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Appends one record with one write(2); it is whole for any later reader once this returns.
   * @throws StorageError `ERR_JOURNAL` (ENOSPC on a full tmpfs, EBADF after close()).
   */
  append(record: JournalRecord): void {
    const line = Buffer.from(journalLine(record));
    try {
      // O_APPEND writes to a regular file are not split by the kernel short of a full
      // filesystem, where a write stops at the last page it could get: ENOSPC from then on.
      const n = writeSync(this.#fd, line);
      if (n !== line.length) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    } catch (e) {
      // A torn line must not stay between whole ones: records appended after it would never be
      // read. Cut back to the last whole record.
      try {
        ftruncateSync(this.#fd, this.#bytes);
      } catch {
        // The next open cuts it off instead; nothing more was appended after it meanwhile only
        // if this journal is not used again, which the caller's error makes likely.
      }
      throw journalError(this.path, 'append', e);
    }
    this.#bytes += line.length;
  }

  /**
   * Replaces the journal with `records` (the state as it is now): written to `<path>.tmp`, then
   * renamed over the journal, so a crash leaves the old journal or the new one, both whole.
   * @throws StorageError `ERR_JOURNAL`; the old journal stays in use then.
   */
  compact(records: readonly JournalRecord[]): void {
    const tmp = `${this.path}.tmp`;
    let fd = -1;
    try {
      fd = openSync(tmp, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_APPEND, 0o600);
      const text = Buffer.from(records.map(journalLine).join(''));
      if (writeSync(fd, text) !== text.length) throw Object.assign(new Error('short write'), { code: 'EIO' });
      renameSync(tmp, this.path);
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      throw journalError(this.path, 'compact', e);
    }
    closeSync(this.#fd);
    this.#fd = fd;
    this.#bytes = fstatSync(fd).size;
  }

  /** Closes the descriptor and gives up the lock; the file stays for the next Sandbox to read. */
  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    if (this.#lock >= 0) closeSync(this.#lock);
    this.#fd = -1;
    this.#lock = -1;
  }
}

function journalError(path: string, what: string, cause: unknown): StorageError {
  const code = (cause as { code?: unknown })?.code;
  return new StorageError(
    'ERR_JOURNAL',
    `cannot ${what} the storage journal ${path}${typeof code === 'string' ? ` (${code})` : ''}: check that it is a file whose directory exists and is writable, on a filesystem with room (the guest's tmpfs)`,
    { value: path, cause },
  );
}
