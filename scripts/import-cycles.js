'use strict';
// Fails when the import graph of lib/ has a circle (type-only imports count: a circle of types is
// still two files that cannot be read alone). Relative imports only; prints each circle found.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..', 'lib');
const files = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) files.push(p);
  }
})(root);

const resolve = (from, spec) => {
  const base = path.resolve(path.dirname(from), spec.replace(/\.js$/, ''));
  for (const c of [`${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(c)) return c;
  return undefined;
};
const edges = new Map();
for (const f of files) {
  const src = fs.readFileSync(f, 'utf8');
  const deps = new Set();
  for (const m of src.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"](\.[^'"]+)['"]/gm)) {
    const to = resolve(f, m[1]);
    if (to) deps.add(to);
  }
  edges.set(f, deps);
}

const state = new Map(); // 1 = on the stack, 2 = done
const stack = [];
const cycles = [];
function visit(f) {
  state.set(f, 1);
  stack.push(f);
  for (const d of edges.get(f) ?? []) {
    if (state.get(d) === 1) cycles.push([...stack.slice(stack.indexOf(d)), d]);
    else if (!state.has(d)) visit(d);
  }
  stack.pop();
  state.set(f, 2);
}
for (const f of files) if (!state.has(f)) visit(f);

const rel = (f) => path.relative(path.join(root, '..'), f);
for (const c of cycles) console.error(`import circle: ${c.map(rel).join(' -> ')}`);
if (cycles.length > 0) process.exit(1);
console.log(`import graph of lib/: ${files.length} files, no circle`);
