// Option words mean the same on every path: mount(2), fsconfig (new API) and the drivers that
// read options themselves (overlayfs' upperdir/workdir/lowerdir). One tokenizer, the native one:
// commas inside double quotes or escaped with a backslash stay in their word.
import t from 'tap';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, mountSync, newMountApiSupport, parseMountOptions, umountSync } from '../../lib/index';
import fc from 'fast-check';
import { StorageError } from '../../lib/errors';
import { native } from '../../lib/native';
import { optionValueMap, splitOptionWords } from '../../lib/option-words';
import { optionWords, overlayPath } from '../../lib/options';
import { cannotMount, mountAt, mountSnapshot, scratchDir } from '../helpers/mountinfo';
import { treeSnapshot } from '../helpers/tree';

const apis: Array<'new' | 'legacy'> = newMountApiSupport().complete ? ['new', 'legacy'] : ['legacy'];

t.test('the tokenizer', async (t) => {
  t.same(
    optionWords(['lowerdir=/x/lo\\,wer,upperdir=/u', 'ro']),
    ['lowerdir=/x/lo\\,wer', 'upperdir=/u', 'ro'],
    'an escaped comma stays',
  );
  t.same(optionWords(['context="a,b",ro']), ['context="a,b"', 'ro'], 'a quoted comma stays');
  t.same(optionWords(['a="open', 'b']), ['a="open', 'b'], 'an element boundary ends an open quote');
  t.same(
    optionWords(['lowerdir=/a\\:b:/c', 'x\\']),
    ['lowerdir=/a\\:b:/c', 'x\\'],
    'colons are not separators; a trailing backslash is kept',
  );
  t.same(optionWords(['a,,b,', '', 'c']), ['a', 'b', 'c'], 'empty words are dropped');
  // The runtime's copy of the grammar reads these the same (the corpora below hold it to all).
  for (const list of [
    ['lowerdir=/x/lo\\,wer,upperdir=/u', 'ro'],
    ['context="a,b",ro'],
    ['a="open', 'b'],
    ['lowerdir=/a\\:b:/c', 'x\\'],
    ['a,,b,', '', 'c'],
  ]) {
    t.same(splitOptionWords(list), optionWords(list), `runtime tokenizer: ${JSON.stringify(list)}`);
  }
  t.same(parseMountOptions(['lowerdir=/x/lo\\,wer', 'ro']).data, 'lowerdir=/x/lo\\,wer');
  t.same(
    parseMountOptions(['mode="755",size=1m']).data,
    'mode=755,size=1m',
    'quotes that protect no comma are dropped',
  );
  t.same(parseMountOptions(['context="a,b"']).data, 'context="a,b"', 'quotes around a comma stay for mount(2)');
  t.equal(overlayPath('/r/up\\,per'), '/r/up,per');
  t.equal(overlayPath('/r/c\\:1'), '/r/c:1');
  t.equal(overlayPath('/r/b\\\\s'), '/r/b\\s');
  t.equal(overlayPath('"/r/q"'), '/r/q');
  for (const bad of ['size=1m, nosuid', ' ro', 'ro ', 'mode=755\t', '\nnodev']) {
    t.throws(
      () => parseMountOptions([bad]),
      { code: 'ERR_INVALID_MOUNT_OPTION', message: /whitespace/ },
      JSON.stringify(bad),
    );
  }
  t.same(parseMountOptions(['x="a b"']).data, 'x=a b', 'whitespace inside a word is the value');
});

t.test(
  'whitespace around a word is refused before anything is touched, on both APIs',
  { skip: cannotMount },
  async (t) => {
    const dir = scratchDir(t);
    for (const api of apis) {
      const before = mountSnapshot();
      t.throws(() => mountSync('tmpfs', dir, 'tmpfs', ['size=1m, nosuid'], { mountApi: api }), {
        code: 'ERR_INVALID_MOUNT_OPTION',
        value: ' nosuid',
      });
      t.equal(mountSnapshot(), before);
    }
  },
);

t.test('quotes mean the same through mount(2) and fsconfig', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  for (const api of apis) {
    mountSync('tmpfs', dir, 'tmpfs', ['size="1m"', 'mode="750"'], { mountApi: api });
    const m = mountAt(dir)!;
    t.ok(m.superOptions.includes('mode=750') && m.superOptions.includes('size=1024k'), `${api}: ${m.superOptions}`);
    umountSync(dir);
  }
});

/** A lower layer `lo,wer` holding `from-lower` and a second one `c:olon` holding `from-colon`. */
function layers(dir: string): { lower: string; colon: string } {
  const lower = join(dir, 'lo,wer');
  const colon = join(dir, 'c:olon');
  mkdirSync(lower);
  mkdirSync(colon);
  writeFileSync(join(lower, 'from-lower'), 'lower\n');
  writeFileSync(join(colon, 'from-colon'), 'colon\n');
  return { lower, colon };
}
const esc = (p: string): string => p.replace(/[\\,:]/g, '\\$&');

t.test('overlayfs paths with escaped commas and colons, mountSync on both APIs', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  const { lower, colon } = layers(dir);
  for (const api of apis) {
    const base = join(dir, api);
    const upper = join(base, 'up,per');
    const work = join(base, 'c:1');
    const merged = join(base, 'merged');
    for (const d of [upper, work, merged]) mkdirSync(d, { recursive: true });
    mountSync(
      'overlay',
      merged,
      'overlay',
      [`lowerdir=${esc(lower)}:${esc(colon)}`, `upperdir=${esc(upper)}`, `workdir=${esc(work)}`],
      { mountApi: api },
    );
    t.same(
      readdirSync(merged).sort(),
      ['from-colon', 'from-lower'],
      `${api}: both lower layers, the one with a colon too`,
    );
    writeFileSync(join(merged, 'new'), 'new\n');
    t.equal(readFileSync(join(upper, 'new'), 'utf8'), 'new\n', `${api}: writes land in up,per`);
    umountSync(merged);
  }
});

t.test(
  'the overlayfs driver creates exactly the directories overlayfs uses, on both APIs',
  { skip: cannotMount },
  async (t) => {
    for (const api of apis) {
      const root = scratchDir(t);
      const { lower } = layers(join(scratchDir(t)));
      const sb = new Sandbox({ allowedRoots: [root], mountApi: api });
      const mp = join(root, 'merged');
      const before = treeSnapshot(root);
      await sb.addStorages(
        [
          {
            driver: 'overlayfs',
            source: 'overlay',
            fstype: 'overlay',
            options: [
              `lowerdir=${esc(lower)}`,
              `upperdir=${esc(join(root, 'up,per'))}`,
              `workdir=${esc(join(root, 'wo,rk'))}`,
            ],
            mountPoint: mp,
          },
          {
            driver: 'overlayfs',
            source: 'overlay',
            fstype: 'overlay',
            options: [`lowerdir=${esc(lower)},upperdir=${esc(join(root, 'c:1'))},workdir=${esc(join(root, 'w:1'))}`],
            mountPoint: join(root, 'merged2'),
          },
        ],
        { containerId: 'c' },
      );
      t.same(
        readdirSync(root).sort(),
        ['c:1', 'merged', 'merged2', 'up,per', 'w:1', 'wo,rk'],
        `${api}: no stray up\\ or wo\\, no literal c\\:1`,
      );
      t.equal(mountAt(mp)?.fstype, 'overlay');
      writeFileSync(join(mp, 'f'), 'f');
      t.ok(existsSync(join(root, 'up,per', 'f')), `${api}: the overlay writes into the directory the driver created`);
      await sb.removeContainer('c');
      t.equal(treeSnapshot(root), before, `${api}: release removes all of them`);
    }
  },
);

t.test('an overlay upperdir outside the allowed roots names the option', { skip: cannotMount }, async (t) => {
  const root = scratchDir(t);
  const sb = new Sandbox({ allowedRoots: [root] });
  const before = treeSnapshot(root);
  await t.rejects(
    sb.addStorages([
      {
        driver: 'overlayfs',
        source: 'overlay',
        fstype: 'overlay',
        options: ['lowerdir=/usr', 'upperdir=/tmp/elsewhere', `workdir=${root}/w`],
        mountPoint: join(root, 'm'),
      },
    ]),
    {
      code: 'ERR_INVALID_STORAGE',
      field: 'options',
      option: 'upperdir',
      value: 'upperdir=/tmp/elsewhere',
      message: /^overlay option upperdir=\/tmp\/elsewhere: is outside the allowed roots/,
    },
  );
  t.equal(treeSnapshot(root), before, 'nothing created');
});

t.test('words no API could read the same way are refused, naming the word', async (t) => {
  t.throws(() => parseMountOptions(['a="x', 'b']), {
    code: 'ERR_INVALID_MOUNT_OPTION',
    value: 'a="x',
    message: /unclosed double quote/,
  });
  t.throws(() => parseMountOptions(['upperdir=/a\\', 'b']), {
    code: 'ERR_INVALID_MOUNT_OPTION',
    value: 'upperdir=/a\\',
    message: /backslash that escapes nothing/,
  });
  t.same(parseMountOptions(['x=/a\\\\', 'b']).data, 'x=/a\\\\,b', 'an escaped backslash is fine');
});

// lib/runtime splits options without the addon (splitOptionWords); the guest splits them natively.
// One grammar: on every input of every fuzz corpus, and on generated lists of the characters the
// grammar turns on, both give the same words, and the word the parser refuses is one of them.
const corpora = join(__dirname, '..', 'fuzz', 'corpus');

/** Both tokenizers over one list (elements separated by NUL, as lists cross to native). */
function sameWords(list: string): { same: boolean; words: string[]; native: string[]; refused?: StorageError } {
  const elements = list.split('\0');
  const words = splitOptionWords(elements);
  const nativeWords = native.optionWords(list);
  const parsed = native.parseMountOptions(list);
  const refused = parsed instanceof StorageError ? parsed : undefined;
  const values = new Map<string, string>();
  for (const w of nativeWords)
    if (w.indexOf('=') > 0) values.set(w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1));
  const same =
    JSON.stringify(words) === JSON.stringify(nativeWords) &&
    JSON.stringify([...optionValueMap(elements)]) === JSON.stringify([...values]) &&
    // A refused word is one of the words (the too-long refusal names the data, not a word).
    (refused === undefined || refused.code === 'ERR_MOUNT_OPTIONS_TOO_LONG' || words.includes(refused.value as string));
  return { same, words, native: nativeWords, refused };
}

t.test('the runtime tokenizer splits every fuzz corpus input as the native one does', async (t) => {
  let inputs = 0;
  let refusals = 0;
  for (const dir of readdirSync(corpora)) {
    for (const name of readdirSync(join(corpora, dir))) {
      // Bytes as latin1 code units: the grammar turns only on ASCII ',', '"', '\\' and NUL, and
      // a byte of a UTF-8 sequence is never one of them.
      const list = readFileSync(join(corpora, dir, name), 'latin1');
      const r = sameWords(list);
      t.ok(r.same, `${dir}/${name}`, { words: r.words, native: r.native, refused: r.refused?.value });
      inputs++;
      if (r.refused !== undefined) refusals++;
    }
  }
  t.ok(inputs >= 39, `all ${inputs} corpus inputs ran`);
  t.ok(refusals >= 3, `${refusals} of them refused by the parser, naming one of the words`);
});

t.test('the runtime tokenizer splits generated lists as the native one does', async (t) => {
  const unit = fc.constantFrom(',', ',', '"', '\\', ' ', '\t', '\0', '=', 'a', 'b', 'é', '\u{1f600}');
  const element = fc.string({ unit, maxLength: 16 });
  let refused = 0;
  fc.assert(
    fc.property(fc.array(element, { maxLength: 5 }), (elements) => {
      const r = sameWords(elements.join('\0'));
      if (r.refused !== undefined) refused++;
      return r.same;
    }),
    { numRuns: 5000 },
  );
  t.ok(refused > 0, `the generated lists include ${refused} the parser refuses`);
});
