// The journal's framing: whole records read back, a torn append (the file cut at any byte of its
// last record) reads to the last whole record and is cut off before the next append, damage before
// the end (or a file that is not a journal) is refused and left as it is, one open at a time holds
// the journal, and compaction leaves one whole file.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, journalLine, parseJournal, type JournalRecord } from '../../lib/sandbox/journal';

function scratch(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kata-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'storages.journal');
}

const records: JournalRecord[] = [
  { t: 'begin', seq: 1, op: 'add', container: 'c1', paths: ['/run/kata-containers/sandbox/a'] },
  { t: 'end', seq: 1, ok: true, mounts: [{ path: '/run/kata-containers/sandbox/a', id: 2 ** 40 + 7 }] },
  { t: 'begin', seq: 2, op: 'release', container: 'c1', paths: ['/run/kata-containers/sandbox/ä ü\n'] },
];

t.test('records appended are read back whole, in order, by the next open', async (t) => {
  const path = scratch(t);
  const first = Journal.open(path);
  t.same(first.contents, { records: [], tornBytes: 0 }, 'a new journal is empty');
  for (const r of records) first.journal.append(r);
  t.equal(first.journal.bytes, readFileSync(path).length, 'bytes counts what is in the file');
  first.journal.close();
  const again = Journal.open(path);
  t.same(again.contents, { records, tornBytes: 0 });
  again.journal.close();
});

t.test('a file cut at every byte of its last record reads to the last whole one', async (t) => {
  const path = scratch(t);
  const whole = records.slice(0, 2).map(journalLine).join('');
  const last = journalLine(records[2]!);
  const full = Buffer.from(whole + last);
  const wholeBytes = Buffer.byteLength(whole);
  let cuts = 0;
  for (let cut = wholeBytes; cut < full.length; cut++) {
    writeFileSync(path, full.subarray(0, cut));
    const { journal, contents } = Journal.open(path);
    if (!t.same(contents.records, records.slice(0, 2), `cut at ${cut}`)) break;
    t.equal(contents.tornBytes, cut - wholeBytes);
    t.equal(readFileSync(path).length, wholeBytes, 'the torn tail is cut off');
    // The next append starts its own line: both records after it read back.
    journal.append(records[2]!);
    journal.close();
    const after = Journal.open(path);
    t.same(after.contents.records, records, 'the append after a torn tail is whole');
    after.journal.close();
    cuts++;
  }
  t.equal(cuts, full.length - wholeBytes, 'every byte of the last record was a cut');
});

t.test('damage before the last line is refused, not cut off: a wrong digest, bad JSON, no kind', async (t) => {
  const path = scratch(t);
  const good = journalLine(records[0]!);
  const line2 = journalLine(records[1]!);
  const flipped = line2.replace('"ok":true', '"ok":fals');
  const cases: Array<[string, string]> = [
    ['a record changed after it was written', good + flipped + journalLine(records[2]!)],
    ['a changed last record, whole with its newline', good + flipped],
    ['a digest that is not hex of the right length', `${good}abc ${JSON.stringify(records[1])}\n`],
    ['JSON that does not parse, with a matching digest', good + lineOf('{"t":')],
    ['a JSON value that is not a record', good + lineOf('[1,2]') + lineOf('{"seq":3}')],
    ['a text file that is not a journal', 'not a journal\n'],
    ['a text file without a newline', 'hello'],
  ];
  for (const [what, text] of cases) {
    const parsed = parseJournal(Buffer.from(text));
    const at = text.startsWith(good) ? Buffer.byteLength(good) : 0;
    t.same(parsed.records, at === 0 ? [] : [records[0]], what);
    t.equal(parsed.damagedAt, at, `${what}: damaged where its first bad record starts`);
    writeFileSync(path, text);
    t.throws(() => Journal.open(path), { code: 'ERR_JOURNAL', value: path, damagedAt: at }, `${what}: refused`);
    t.equal(readFileSync(path, 'utf8'), text, `${what}: the file is left as it was`);
  }
  // What a killed append leaves is not damage.
  for (const tail of ['', '0', '0123456789abcdef', '0123456789abcdef ', '0123456789abcdef {"t":"be']) {
    t.equal(parseJournal(Buffer.from(good + tail)).damagedAt, undefined, `torn tail ${JSON.stringify(tail)}`);
  }
});

t.test('one open journal at a time: a second open is refused until the first closes', async (t) => {
  const path = scratch(t);
  const first = Journal.open(path);
  first.journal.append(records[0]!);
  t.throws(() => Journal.open(path), { code: 'ERR_JOURNAL', value: path, locked: true });
  t.equal(readFileSync(path).length, first.journal.bytes, 'the refused open changed nothing');
  first.journal.close();
  const second = Journal.open(path);
  t.same(second.contents.records, [records[0]]);
  second.journal.close();
});

// A line whose digest is right for arbitrary text, to reach the checks made after the digest.
function lineOf(json: string): string {
  return `${createHash('sha256').update(json).digest('hex').slice(0, 16)} ${json}\n`;
}

t.test('compaction replaces the journal with the state, whole, and appends go on after it', async (t) => {
  const path = scratch(t);
  const { journal } = Journal.open(path);
  for (const r of records) journal.append(r);
  const snapshot: JournalRecord[] = [
    { t: 'snapshot', seq: 2, entries: [{ path: '/run/kata-containers/sandbox/a', refcount: 1 }] },
  ];
  journal.compact(snapshot);
  t.notOk(existsSync(`${path}.tmp`), 'the write-aside file was renamed over the journal');
  t.equal(journal.bytes, Buffer.byteLength(journalLine(snapshot[0]!)));
  journal.append(records[0]!);
  journal.close();
  const again = Journal.open(path);
  t.same(again.contents.records, [...snapshot, records[0]]);
  again.journal.close();
});

t.test('a journal that cannot be opened or written is ERR_JOURNAL naming it, with the cause', async (t) => {
  const path = scratch(t);
  const missingDir = join(path, 'no', 'such', 'dir');
  t.throws(() => Journal.open(missingDir), {
    name: 'StorageError',
    code: 'ERR_JOURNAL',
    value: missingDir,
    cause: { code: 'ENOENT' },
  });
  const { journal } = Journal.open(path);
  journal.close();
  t.throws(() => journal.append(records[0]!), { code: 'ERR_JOURNAL', value: path });
  t.equal(readFileSync(path).length, 0, 'nothing was written');
});
