// The driver names are declared once (lib/drivers.ts); the docs are held to that list here, so a
// driver added, renamed or removed cannot leave a stale name in the README, docs/api.md or
// docs/drivers.md.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUILTIN_DRIVERS, StorageDrivers } from '../../lib/drivers';
import { StorageDrivers as exported, BUILTIN_DRIVERS as exportedList } from '../../lib/index';

const root = join(__dirname, '..', '..');
const doc = (...p: string[]) => readFileSync(join(root, ...p), 'utf8');

/** The backquoted names in the first cell of each row of the markdown table under `heading`. */
function tableNames(text: string, heading: string): string[] {
  const at = text.indexOf(`\n${heading}\n`);
  if (at < 0) return [];
  const names: string[] = [];
  for (const line of text.slice(at + heading.length + 2).split('\n')) {
    if (line.startsWith('#')) break;
    const row = /^\| *([^|]*?) *\|/.exec(line);
    if (!row || /^-+$/.test(row[1]!) || row[1] === 'driver') continue;
    names.push(...[...row[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
  }
  return names;
}

t.test("the constants are Kata's names, each once, exported as the package's API", async (t) => {
  // The strings a Kata runtime sends (kata-types device.rs DRIVER_*_TYPE; the agent's
  // DRIVER_MULTI_LAYER_EROFS in storage/multi_layer_erofs.rs), spelt out once more here so a
  // changed constant fails; a driver added later needs no line here.
  t.has(StorageDrivers, {
    DRIVER_VIRTIOFS_TYPE: 'virtio-fs',
    DRIVER_9P_TYPE: '9p',
    DRIVER_BLK_PCI_TYPE: 'blk',
    DRIVER_BLK_CCW_TYPE: 'blk-ccw',
    DRIVER_BLK_MMIO_TYPE: 'mmioblk',
    DRIVER_SCSI_TYPE: 'scsi',
    DRIVER_NVDIMM_TYPE: 'nvdimm',
    DRIVER_EPHEMERAL_TYPE: 'ephemeral',
    DRIVER_LOCAL_TYPE: 'local',
    DRIVER_OVERLAYFS_TYPE: 'overlayfs',
    DRIVER_WATCHABLE_BIND_TYPE: 'watchable-bind',
    DRIVER_MULTI_LAYER_EROFS: 'erofs.multi-layer',
  });
  t.same(BUILTIN_DRIVERS, Object.values(StorageDrivers), 'the list is the record, in order');
  t.equal(new Set(BUILTIN_DRIVERS).size, BUILTIN_DRIVERS.length, 'no name twice');
  t.ok(Object.isFrozen(StorageDrivers) && Object.isFrozen(BUILTIN_DRIVERS), 'frozen');
  t.equal(exported, StorageDrivers);
  t.equal(exportedList, BUILTIN_DRIVERS);
});

t.test('docs/drivers.md has one row per built-in driver, in order, with its constant', async (t) => {
  const text = doc('docs', 'drivers.md');
  const rows = [...text.matchAll(/^\| `([^`]+)` \| `([A-Z0-9_]+)` \|/gm)].map((m) => [m[1], m[2]]);
  t.same(
    rows,
    Object.entries(StorageDrivers).map(([k, v]) => [v, k]),
  );
  const anyRow = text.split('\n').filter((l) => l.startsWith('| `'));
  t.equal(anyRow.length, rows.length, 'no other driver row (a driver without its constant)');
});

t.test('the README and docs/api.md name only drivers that exist', async (t) => {
  const readme = doc('README.md');
  const summary = tableNames(readme, '## Drivers');
  t.ok(summary.length >= 6, `the README's driver table names ${summary.length} drivers`);
  for (const name of summary) t.ok(BUILTIN_DRIVERS.includes(name as never), `README: ${name} is a built-in driver`);
  t.match(readme, /\(docs\/drivers\.md\)/, 'the README links the full table');
  const api = doc('docs', 'api.md');
  t.match(api, /`defaultRegistry\(\)` holds a handler for each of `BUILTIN_DRIVERS`/);
  t.match(api, /\(drivers\.md\)/);
  // Every example request in the docs uses a real driver (or one it registers itself).
  for (const [file, text] of [
    ['README.md', readme],
    ['docs/api.md', api],
    ['docs/drivers.md', doc('docs', 'drivers.md')],
  ] as const) {
    const used = [...text.matchAll(/driver: '([^']+)'/g)].map((m) => m[1]!);
    for (const name of used) t.ok(BUILTIN_DRIVERS.includes(name as never), `${file}: driver '${name}' exists`);
  }
});
