// The prebuild gate (scripts/verify-prebuilds.js) must refuse each kind of bad artifact loudly,
// naming the offence, and pass good ones. The bad artifacts are real ELF files compiled here.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(__dirname, '..', '..');
const script = join(root, 'scripts', 'verify-prebuilds.js');
const haveCc = spawnSync('cc', ['--version']).status === 0 && spawnSync('strip', ['--version']).status === 0;
const skip =
  process.arch !== 'x64'
    ? 'the fixtures are x86-64 ELF files'
    : !haveCc
      ? 'needs cc and strip (apt-get install g++ binutils)'
      : false;

function scratch(t: tap.Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'kata-verify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Compiles `source` into a shared object, as an addon would be. */
function compile(dir: string, name: string, source: string, flags: string[] = []): string {
  const c = join(dir, `${name}.c`);
  const out = join(dir, `${name}.so`);
  writeFileSync(c, source);
  const r = spawnSync('cc', ['-D_GNU_SOURCE', '-shared', '-fPIC', '-O1', '-o', out, c, ...flags], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc failed: ${r.stderr}`);
  return out;
}

function strip(file: string): string {
  const r = spawnSync('strip', ['--strip-all', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`strip failed: ${r.stderr}`);
  return file;
}

/** Lays `files` out as prebuilds/linux-<arch>/<name> and runs the gate on it. */
function verify(
  dir: string,
  files: Record<string, string[]>,
  arches: string,
): { status: number | null; stdout: string; stderr: string } {
  const prebuilds = join(dir, `prebuilds-${Math.random().toString(36).slice(2)}`);
  for (const [arch, list] of Object.entries(files)) {
    mkdirSync(join(prebuilds, `linux-${arch}`), { recursive: true });
    list.forEach((f, i) =>
      copyFileSync(f, join(prebuilds, `linux-${arch}`, i === 0 ? 'kata-storage.glibc.node' : `extra${i}.node`)),
    );
  }
  const r = spawnSync(process.execPath, [script, prebuilds, '--arch', arches], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const GOOD = 'int kata_probe(int x) { return x + 1; }\n';

t.test('a stripped x86-64 object needing only libc passes, and so does the real addon', { skip }, async (t) => {
  const dir = scratch(t);
  const good = strip(compile(dir, 'good', GOOD));
  const r = verify(dir, { x64: [good] }, 'x64');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^ok linux-x64\/kata-storage\.glibc\.node: x86-64 LSB, stripped/m);

  // Whatever this test run loads (the dev build, or the prebuild under PREBUILDS_ONLY=1) must
  // meet the floor too once stripped: the glibc compat layer is part of every build.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const addon = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(root);
  const copy = join(dir, 'addon.node');
  copyFileSync(addon, copy);
  const real = verify(dir, { x64: [strip(copy)] }, 'x64');
  t.equal(real.status, 0, real.stderr);
  t.match(real.stdout, /newest GLIBC_2\.(2[0-8]|1\d)\b/, 'the addon needs nothing newer than glibc 2.28');
});

t.test('each offence fails the gate and is named', { skip }, async (t) => {
  const dir = scratch(t);
  const good = strip(compile(dir, 'good', GOOD));
  const cases: [string, () => Record<string, string[]>, string, RegExp[]][] = [
    ['not stripped', () => ({ x64: [compile(dir, 'unstripped', GOOD)] }), 'x64', [/not stripped: has a \.symtab/]],
    [
      'a glibc symbol newer than 2.28',
      () => ({
        x64: [
          strip(compile(dir, 'new', '#include <unistd.h>\nint kata_probe(void) { return close_range(3, 3, 0); }\n')),
        ],
      }),
      'x64',
      [
        /FAIL linux-x64\/kata-storage\.glibc\.node: close_range@GLIBC_2\.34 \(from libc\.so\.6\): newer than the GLIBC 2\.28 floor/,
      ],
    ],
    [
      'a library other than libc, libstdc++, libgcc_s',
      () => ({
        x64: [
          strip(
            compile(
              dir,
              'libm',
              '#include <math.h>\nvolatile double v = 1;\ndouble kata_probe(void) { return cos(v); }\n',
              ['-Wl,--no-as-needed', '-lm'],
            ),
          ),
        ],
      }),
      'x64',
      [
        /NEEDED libm\.so\.6: only libc\.so\.6, libstdc\+\+\.so\.6, libgcc_s\.so\.1, ld-linux-x86-64\.so\.2 may be needed/,
      ],
    ],
    [
      'the wrong machine',
      () => {
        const f = join(dir, 'arm.so');
        const b = readFileSync(good);
        b.writeUInt16LE(183, 18);
        writeFileSync(f, b);
        return { x64: [f] };
      },
      'x64',
      [/ELF machine 183, expected 62 \(x86-64\)/],
    ],
    [
      'the wrong byte order',
      () => ({ s390x: [good] }),
      's390x',
      [/ELF machine 62, expected 22 \(S\/390\)/, /byte order little-endian, expected big-endian/],
    ],
    [
      'a missing arch',
      () => ({ x64: [good] }),
      'x64,arm64',
      [/FAIL linux-arm64: missing: .*linux-arm64 \(run npm run prebuild\)/],
    ],
    [
      'two files for one arch',
      () => ({ x64: [good, good] }),
      'x64',
      [/expected exactly one \.node file, found: extra1\.node, kata-storage\.glibc\.node/],
    ],
    [
      'not an ELF file',
      () => {
        const f = join(dir, 'text.node');
        writeFileSync(f, 'module.exports = {}\n');
        return { x64: [f] };
      },
      'x64',
      [/cannot be read as ELF: not an ELF file/],
    ],
    ['an unknown arch', () => ({}), 'ppc64', [/FAIL ppc64: unsupported arch/]],
    [
      'a stray directory that would be published',
      () => ({ x64: [good], ia32: [good] }),
      'x64',
      [/FAIL linux-ia32: unexpected entry in prebuilds\//],
    ],
  ];
  for (const [name, make, arches, messages] of cases) {
    const r = verify(dir, make(), arches);
    t.equal(r.status, 1, `${name}: exit 1`);
    for (const m of messages) t.match(r.stderr, m, name);
    t.match(r.stderr, /prebuild:verify: \d+ problem\(s\)/, `${name}: counted`);
  }
});
