// bench/chart.js, the figure of docs/performance.md: run as the doc says, on fixture inputs (the
// Go-agent harness's tables and a results.json of bench/run.js's shape).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');
const fixtures = join(__dirname, '..', 'fixtures', 'chart');
const chart = (...args: string[]) =>
  spawnSync(process.execPath, [join(root, 'bench', 'chart.js'), ...args], { encoding: 'utf8' });

t.test('one bar per program, source and N, labelled with its value in µs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'performance.svg');
  const r = chart('--results', join(fixtures, 'results.json'), '--goagent', join(fixtures, 'goagent.md'), '--out', out);
  t.equal(r.status, 0, r.stderr);
  const svg = readFileSync(out, 'utf8');
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="\d+" height="\d+"/);
  t.match(svg, /<\/svg>\n$/);
  const bars = [
    ...svg.matchAll(/<rect [^>]*data-program="([^"]+)" data-n="(\d+)" data-source="(\w+)" data-us="([\d.]+)"/g),
  ];
  const key = (m: RegExpMatchArray) => `${m[3]} ${m[1]} N=${m[2]} ${m[4]}`;
  t.same(
    bars.map(key).sort(),
    [
      // The harness's medians are per request already.
      'harness go-agent N=1 62.9',
      'harness kata-storage N=1 281',
      'harness C loop N=1 38.2',
      'harness go-agent N=100 7036',
      'harness kata-storage N=100 11835',
      'harness C loop N=100 5108',
      // The bench's are per storage: a request of 100 costs 100 times that.
      'bench kata-storage N=1 260',
      'bench C loop N=1 68',
      'bench kata-storage N=100 10410',
      'bench C loop N=100 7130',
    ].sort(),
  );
  // Longer bar for the larger value within a panel, zero-based.
  const width = (program: string, n: number, source: string) =>
    Number(
      new RegExp(`width="([\\d.]+)"[^>]*data-program="${program}" data-n="${n}" data-source="${source}"`).exec(
        svg,
      )?.[1],
    );
  t.ok(width('kata-storage', 1, 'harness') > width('go-agent', 1, 'harness'), 'bars scale with the value');
  t.ok(Math.abs(width('kata-storage', 1, 'harness') / width('C loop', 1, 'harness') - 281 / 38.2) < 0.1, 'from zero');
  for (const label of [
    "Kata's Go agent",
    'kata-storage (Sandbox)',
    'C loop, same system calls',
    'N = 1 storage per request',
    'N = 100 storages per request',
    '62.9 µs',
    '11,835 µs',
    '10,410 µs',
    'µs per request of 100 (add + release)',
    'Go-agent harness: 2026-01-01T00:00:00Z go1.19.8',
    'npm run bench, 5 rounds',
  ]) {
    t.ok(svg.includes(label), `labelled: ${label}`);
  }
});

t.test('bad input: exit 2 for usage, 1 for a file it cannot use, and no figure written', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'chart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'x.svg');
  let r = chart('--out', out);
  t.equal(r.status, 2);
  t.match(r.stderr, /usage: node bench\/chart\.js/);
  r = chart('--goagent', join(fixtures, 'goagent.md'), '--out', out, '--bogus');
  t.equal(r.status, 2);
  t.match(r.stderr, /--bogus/);
  r = chart('--goagent', join(dir, 'missing.md'), '--out', out);
  t.equal(r.status, 1);
  t.match(r.stderr, /cannot read .*missing\.md/);
  const partial = join(dir, 'partial.md');
  writeFileSync(partial, readFileSync(join(fixtures, 'goagent.md'), 'utf8').replace(/\| go-agent \| 7036 .*\n/, ''));
  r = chart('--goagent', partial, '--out', out);
  t.equal(r.status, 1);
  t.match(r.stderr, /no "\| go-agent \| <median> \|" row under "## N = 100/);
  const bad = join(dir, 'results.json');
  writeFileSync(bad, JSON.stringify({ sandbox: { per_request: { 1: { c: { median_us: 1 } } } } }));
  r = chart('--results', bad, '--out', out);
  t.equal(r.status, 1);
  t.match(r.stderr, /sandbox\.per_request\.1\.js\.median_us is not a positive number/);
  t.notOk(existsSync(out), 'nothing written');
});
