import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StorageError } from '../../lib/index';
import { abortError, nativeError, systemError } from '../../lib/errors';
import { loadBinding, native } from '../../lib/native';

t.test('system errors look like Node fs errors', async (t) => {
  const e = systemError(16, 'mount', 'tmpfs', '/run/x');
  t.equal(e.message, "EBUSY: resource busy or locked, mount 'tmpfs' -> '/run/x'");
  t.match(e, { code: 'EBUSY', errno: -16, syscall: 'mount', path: 'tmpfs', dest: '/run/x' });
  t.ok(e instanceof Error);
  const u = systemError(-2, 'stat');
  t.equal(u.message, 'ENOENT: no such file or directory, stat');
  t.notOk('path' in u);
  t.match(systemError(3999, 'x'), { errno: -3999, message: /^Unknown system error -3999/ });
});

t.test('native descriptors become errors', async (t) => {
  const k = nativeError(22, 'fsconfig', 'tmpfs', '/m', ["tmpfs: Bad value for 'size'"]);
  t.match(k, { code: 'EINVAL', syscall: 'fsconfig', kernelMessages: ["tmpfs: Bad value for 'size'"] });
  t.match(k.message, /Bad value for 'size'/);
  const s = nativeError(
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    'ERR_MOUNT_OPTIONS_TOO_LONG',
    'x'.repeat(5000),
  );
  t.ok(s instanceof StorageError);
  t.equal(s.name, 'StorageError');
  t.match(s.message, /5000 bytes/);
  t.notMatch(s.message, 'xxxx', 'the over-long data is named by its size, not quoted');
  // The native side says why an option word was refused; the message names the word before it.
  const w = nativeError(
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    'ERR_INVALID_MOUNT_OPTION',
    ` ${'y'.repeat(100)}`,
    'starts or ends with whitespace',
  );
  t.equal(w.message, `mount option ' ${'y'.repeat(63)}...' starts or ends with whitespace`, 'a long word is cut');
  t.match(w, { code: 'ERR_INVALID_MOUNT_OPTION', value: ` ${'y'.repeat(100)}` }, 'the value stays whole');
  t.match(nativeError(undefined, undefined, undefined, undefined, undefined, 'ERR_SOMETHING', 'v'), {
    code: 'ERR_SOMETHING',
    value: 'v',
  });
});

t.test('the addon hands back final errors, built by the one converter', async (t) => {
  const sys = native.umountSync('/proc/self/kata-storage-no-such-mount', false, false, false, 0);
  t.ok(sys instanceof Error, 'a system call failure is an Error, not a descriptor');
  t.match(sys, { code: 'ENOENT', errno: -2, syscall: 'umount2', path: '/proc/self/kata-storage-no-such-mount' });
  const opt = native.parseMountOptions('loop');
  t.ok(opt instanceof StorageError, 'an option refused by the native tokenizer is a StorageError');
  t.match(opt, {
    code: 'ERR_INVALID_MOUNT_OPTION',
    value: 'loop',
    message: /^mount option 'loop' is not supported: it needs a loop device/,
  });
  // Every refusal of the parser carries its reason across: each kind reads differently.
  const refusals = ['loop', ' ro', 'a="x', 'x\\', 'x'.repeat(5000)].map((list) => native.parseMountOptions(list));
  for (const r of refusals) t.ok(r instanceof StorageError, String(r));
  t.equal(
    new Set(refusals.map((r) => (r as StorageError).message.replace(/^mount (option '[^']*'|data of \d+ bytes) /, '')))
      .size,
    5,
  );
  const pci = native.parsePciPath('zz');
  t.ok(pci instanceof StorageError);
  t.match(pci, { code: 'ERR_INVALID_PCI_PATH', value: 'zz', message: /invalid PCI path.*'zz'/ });
  t.throws(() => native.setErrorConstructor(5 as never), TypeError);
});

t.test('StorageError carries code, value, cause and extra fields', async (t) => {
  const cause = new Error('inner');
  const e = new StorageError('ERR_INVALID_STORAGE', 'bad', { value: 'x', cause, field: 'mountPoint' });
  t.match(e, { code: 'ERR_INVALID_STORAGE', value: 'x', field: 'mountPoint', cause });
  t.equal(new StorageError('ERR_X' as 'ERR_INVALID_STORAGE', 'm').value, undefined);
});

t.test('AbortError has Node shape', async (t) => {
  const ac = new AbortController();
  ac.abort('why');
  t.match(abortError(ac.signal), { name: 'AbortError', code: 'ABORT_ERR', cause: 'why' });
  t.match(abortError(), { name: 'AbortError', code: 'ABORT_ERR' });
});

t.test('the loader says what it tried', async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'kata-load-'));
  const explicit = process.env.KATA_STORAGE_ADDON;
  delete process.env.KATA_STORAGE_ADDON;
  t.teardown(() => {
    rmSync(empty, { recursive: true });
    if (explicit !== undefined) process.env.KATA_STORAGE_ADDON = explicit;
  });
  const err = t.throws(() => loadBinding(empty)) as StorageError;
  t.equal(err.code, 'ERR_NATIVE_LOAD');
  t.match(err.message, join(empty, 'prebuilds', `${process.platform}-${process.arch}`));
  t.match(err.message, /\(missing\)/);
  t.match(err.message, /npm rebuild kata-storage/);
  t.ok(err.cause, 'the underlying error is kept');
});

t.test('KATA_STORAGE_ADDON names the addon to load, and a bad one is reported', async (t) => {
  const explicit = process.env.KATA_STORAGE_ADDON;
  t.teardown(() => {
    if (explicit === undefined) delete process.env.KATA_STORAGE_ADDON;
    else process.env.KATA_STORAGE_ADDON = explicit;
  });
  process.env.KATA_STORAGE_ADDON = '/nonexistent/kata_storage.node';
  const err = t.throws(() => loadBinding()) as StorageError;
  t.equal(err.code, 'ERR_NATIVE_LOAD');
  t.match(err.message, '/nonexistent/kata_storage.node (missing)');
});
