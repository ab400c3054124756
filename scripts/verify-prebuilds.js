#!/usr/bin/env node
// npm run prebuild:verify [-- <prebuilds dir>] [--arch x64,arm64,s390x]
// Gates every prebuilt addon before it can be packed: present for each supported arch, the ELF
// machine and byte order of that arch, stripped, needing nothing but glibc (libc and its dynamic
// loader), libstdc++ and libgcc_s, and no symbol version newer than what Node's own Linux builds
// require (glibc 2.28; libstdc++/libgcc of GCC 8, should they ever be linked dynamically).
// Reads the ELF itself, so it needs no binutils for foreign arches. Exit 1 names every offence.
'use strict';
const { readFileSync, readdirSync, existsSync, statSync } = require('node:fs');
const { join, resolve } = require('node:path');

const ARCHES = {
  x64: { machine: 62, machineName: 'x86-64', bigEndian: false, loader: 'ld-linux-x86-64.so.2' },
  arm64: { machine: 183, machineName: 'AArch64', bigEndian: false, loader: 'ld-linux-aarch64.so.1' },
  s390x: { machine: 22, machineName: 'S/390', bigEndian: true, loader: 'ld64.so.1' },
};
const ALLOWED_LIBS = ['libc.so.6', 'libstdc++.so.6', 'libgcc_s.so.1'];
// The newest version of each versioned library interface an artifact may ask for.
const FLOORS = { GLIBC: '2.28', GLIBCXX: '3.4.25', CXXABI: '1.3.11', GCC: '8.0.0' };

const SHT_SYMTAB = 2;
const SHT_DYNAMIC = 6;
const SHT_DYNSYM = 11;
const SHT_GNU_VERNEED = 0x6ffffffe;
const SHT_GNU_VERSYM = 0x6fffffff;
const DT_NEEDED = 1;
const ET_DYN = 3;

function compareVersions(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The facts the gate needs from a 64-bit ELF shared object. Throws on anything else. */
function readElf(buf) {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (buf[4] !== 2) throw new Error(`ELF class ${buf[4]}, expected 2 (64-bit)`);
  if (buf[5] !== 1 && buf[5] !== 2) throw new Error(`unknown ELF byte order ${buf[5]}`);
  const bigEndian = buf[5] === 2;
  const u16 = (o) => (bigEndian ? buf.readUInt16BE(o) : buf.readUInt16LE(o));
  const u32 = (o) => (bigEndian ? buf.readUInt32BE(o) : buf.readUInt32LE(o));
  const u64 = (o) => Number(bigEndian ? buf.readBigUInt64BE(o) : buf.readBigUInt64LE(o));
  const type = u16(16);
  const machine = u16(18);
  const shoff = u64(0x28);
  const shentsize = u16(0x3a);
  const shnum = u16(0x3c);
  const shstrndx = u16(0x3e);
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * shentsize;
    sections.push({
      nameOffset: u32(o),
      type: u32(o + 4),
      offset: u64(o + 24),
      size: u64(o + 32),
      link: u32(o + 40),
      info: u32(o + 44),
      entsize: u64(o + 56),
    });
  }
  const cstr = (section, at) => {
    const start = section.offset + at;
    return buf.toString('latin1', start, buf.indexOf(0, start));
  };
  for (const s of sections) s.name = cstr(sections[shstrndx], s.nameOffset);

  const needed = [];
  for (const dyn of sections.filter((s) => s.type === SHT_DYNAMIC)) {
    for (let o = dyn.offset; o < dyn.offset + dyn.size; o += 16) {
      if (u64(o) === DT_NEEDED) needed.push(cstr(sections[dyn.link], u64(o + 8)));
    }
  }

  // Version index -> required version (and the library it is required from).
  const versions = new Map();
  for (const vr of sections.filter((s) => s.type === SHT_GNU_VERNEED)) {
    const strtab = sections[vr.link];
    let o = vr.offset;
    for (let n = 0; n < vr.info; n++) {
      const cnt = u16(o + 2);
      const file = cstr(strtab, u32(o + 4));
      let a = o + u32(o + 8);
      for (let k = 0; k < cnt; k++) {
        versions.set(u16(a + 6), { file, name: cstr(strtab, u32(a + 8)) });
        a += u32(a + 12);
      }
      o += u32(o + 12);
    }
  }
  const versym = sections.find((s) => s.type === SHT_GNU_VERSYM);
  const requirements = [];
  const dynsym = sections.find((s) => s.type === SHT_DYNSYM);
  if (dynsym) {
    const count = dynsym.size / 24;
    for (let i = 1; i < count; i++) {
      const o = dynsym.offset + i * 24;
      const undefinedSymbol = u16(o + 6) === 0;
      const index = versym ? u16(versym.offset + i * 2) & 0x7fff : 0;
      if (!undefinedSymbol || !versions.has(index)) continue;
      requirements.push({ symbol: cstr(sections[dynsym.link], u32(o)), ...versions.get(index) });
    }
  }
  return {
    type,
    machine,
    bigEndian,
    needed,
    requirements,
    versionsRequired: [...versions.values()],
    symtab: sections.some((s) => s.type === SHT_SYMTAB),
    debugSections: sections.filter((s) => s.name.startsWith('.debug')).map((s) => s.name),
  };
}

/** Every reason `file` must not ship as the prebuild for `arch` (empty when it may). */
function offences(file, arch) {
  const want = ARCHES[arch];
  let elf;
  try {
    elf = readElf(readFileSync(file));
  } catch (err) {
    return [`cannot be read as ELF: ${err.message}`];
  }
  const out = [];
  if (elf.type !== ET_DYN) out.push(`ELF type ${elf.type}, expected ${ET_DYN} (shared object)`);
  if (elf.machine !== want.machine)
    out.push(`ELF machine ${elf.machine}, expected ${want.machine} (${want.machineName})`);
  if (elf.bigEndian !== want.bigEndian) {
    out.push(
      `byte order ${elf.bigEndian ? 'big' : 'little'}-endian, expected ${want.bigEndian ? 'big' : 'little'}-endian`,
    );
  }
  if (elf.symtab) out.push('not stripped: has a .symtab');
  if (elf.debugSections.length) out.push(`not stripped: has ${elf.debugSections.join(', ')}`);
  for (const lib of elf.needed) {
    if (!ALLOWED_LIBS.includes(lib) && lib !== want.loader) {
      out.push(`NEEDED ${lib}: only ${[...ALLOWED_LIBS, want.loader].join(', ')} may be needed`);
    }
  }
  const seen = new Set();
  for (const r of elf.requirements) {
    const problem = versionProblem(r.name);
    if (problem) out.push(`${r.symbol}@${r.name} (from ${r.file}): ${problem}`);
    seen.add(r.name);
  }
  for (const v of elf.versionsRequired) {
    const problem = seen.has(v.name) ? undefined : versionProblem(v.name);
    if (problem) out.push(`version ${v.name} required from ${v.file}: ${problem}`);
  }
  return out;
}

function versionProblem(version) {
  const m = /^([A-Z]+)_([0-9.]+)$/.exec(version);
  if (!m || !(m[1] in FLOORS)) return 'unknown symbol version';
  const floor = FLOORS[m[1]];
  return compareVersions(m[2], floor) > 0 ? `newer than the ${m[1]} ${floor} floor` : undefined;
}

function newest(file) {
  const { requirements } = readElf(readFileSync(file));
  const glibc = requirements.filter((r) => r.name.startsWith('GLIBC_'));
  glibc.sort((a, b) => compareVersions(a.name.slice(6), b.name.slice(6)));
  const top = glibc.pop();
  return top ? `newest ${top.name} (${top.symbol})` : 'no GLIBC versions';
}

function main(argv) {
  let dir = resolve(__dirname, '..', 'prebuilds');
  let arches = Object.keys(ARCHES);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--arch') arches = argv[++i].split(',');
    else dir = resolve(argv[i]);
  }
  let failures = 0;
  const fail = (what, why) => {
    failures++;
    console.error(`FAIL ${what}: ${why}`);
  };
  for (const arch of arches) {
    if (!(arch in ARCHES)) {
      fail(arch, `unsupported arch (supported: ${Object.keys(ARCHES).join(', ')})`);
      continue;
    }
    const sub = join(dir, `linux-${arch}`);
    if (!existsSync(sub) || !statSync(sub).isDirectory()) {
      fail(`linux-${arch}`, `missing: ${sub} (run npm run prebuild)`);
      continue;
    }
    const files = readdirSync(sub);
    const addons = files.filter((f) => f.endsWith('.node'));
    if (addons.length !== 1 || files.length !== 1) {
      fail(`linux-${arch}`, `expected exactly one .node file, found: ${files.join(', ') || 'nothing'}`);
    }
    for (const f of addons) {
      const what = `linux-${arch}/${f}`;
      const bad = offences(join(sub, f), arch);
      for (const b of bad) fail(what, b);
      if (!bad.length) {
        const { needed } = readElf(readFileSync(join(sub, f)));
        console.log(
          `ok ${what}: ${ARCHES[arch].machineName} ${ARCHES[arch].bigEndian ? 'MSB' : 'LSB'}, ` +
            `stripped, NEEDED ${needed.join(' ')}, ${newest(join(sub, f))}`,
        );
      }
    }
  }
  for (const extra of existsSync(dir) ? readdirSync(dir) : []) {
    if (!Object.keys(ARCHES).some((a) => extra === `linux-${a}`)) {
      fail(extra, 'unexpected entry in prebuilds/ (it would be published)');
    }
  }
  if (failures) {
    console.error(`prebuild:verify: ${failures} problem(s) in ${dir}`);
    return 1;
  }
  console.log(`prebuild:verify: ${arches.length} prebuild(s) pass`);
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));

module.exports = { readElf, offences };
