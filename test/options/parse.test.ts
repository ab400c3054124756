import t from 'tap';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { MountFlags, parseMountOptions } from '../../lib/index';

const F = MountFlags;
const all = (o: readonly string[]): [number, string] => {
  const p = parseMountOptions(o);
  return [p.flags | p.propagation, p.data];
};

t.test('MountFlags are the kernel values', async (t) => {
  t.ok(Object.isFrozen(MountFlags));
  t.equal(F.RDONLY, 1);
  t.equal(F.NOSUID, 2);
  t.equal(F.BIND, 4096);
  t.equal(F.REC, 16384);
  t.equal(F.SHARED, 1 << 20);
  t.equal(F.LAZYTIME, 1 << 25);
  t.equal(F.NOSYMFOLLOW, 256);
  t.equal(Object.keys(F).length, 24);
});

t.test("Kata's parser vectors", async (t) => {
  t.same(all([]), [0, '']);
  t.same(all(['ro']), [F.RDONLY, '']);
  t.same(all(['rw']), [0, '']);
  t.same(all(['ro', 'rw']), [0, '']);
  t.same(all(['ro', 'nodev']), [F.RDONLY | F.NODEV, '']);
  t.same(all(['option1', 'nodev', 'option2']), [F.NODEV, 'option1,option2']);
  t.same(all(['rbind', '', 'ro']), [F.BIND | F.REC | F.RDONLY, '']);
  t.same(all(['dev', 'ro', 'defaults', 'data-option']), [F.RDONLY, 'data-option']);
});

t.test('order matters: later words win', async (t) => {
  t.same(all(['rw', 'ro']), [F.RDONLY, '']);
  t.same(all(['nosuid,suid']), [0, '']);
  t.same(all(['noexec', 'exec', 'noexec']), [F.NOEXEC, '']);
  t.same(all(['lazytime', 'nolazytime']), [0, '']);
  t.same(all(['nolazytime', 'lazytime']), [F.LAZYTIME, '']);
  t.same(all(['nosymfollow']), [F.NOSYMFOLLOW, '']);
  t.same(all(['nosymfollow', 'symfollow']), [0, '']);
  t.same(all(['relatime', 'norelatime', 'strictatime']), [F.STRICTATIME, '']);
  t.same(all(['sync', 'async', 'dirsync', 'mand', 'nomand', 'silent', 'loud', 'iversion', 'noiversion']), [
    F.DIRSYNC,
    '',
  ]);
  t.same(all(['noatime', 'nodiratime', 'atime']), [F.NODIRATIME, '']);
  t.same(all(['remount', 'bind']), [F.REMOUNT | F.BIND, '']);
});

t.test('propagation words are kept apart from flags', async (t) => {
  const p = parseMountOptions(['rbind', 'rshared', 'ro']);
  t.equal(p.flags, F.BIND | F.REC | F.RDONLY);
  t.equal(p.propagation, F.SHARED | F.REC);
  t.equal(parseMountOptions(['private']).propagation, F.PRIVATE);
  t.equal(parseMountOptions(['rprivate']).propagation, F.PRIVATE | F.REC);
  t.equal(parseMountOptions(['slave']).propagation, F.SLAVE);
  t.equal(parseMountOptions(['rslave']).propagation, F.SLAVE | F.REC);
  t.equal(parseMountOptions(['unbindable']).propagation, F.UNBINDABLE);
  t.equal(parseMountOptions(['runbindable']).propagation, F.UNBINDABLE | F.REC);
  t.equal(parseMountOptions(['shared', 'private']).propagation, F.PRIVATE, 'the last propagation word wins');
  t.equal(parseMountOptions(['shared']).flags, 0);
});

t.test('elements split on commas outside double quotes; data keeps order', async (t) => {
  t.same(all(['size=1m,nodev,mode=700']), [F.NODEV, 'size=1m,mode=700']);
  t.same(all(['context="system_u:object_r:container_file_t:s0:c1,c2"', 'ro']), [
    F.RDONLY,
    'context="system_u:object_r:container_file_t:s0:c1,c2"',
  ]);
  t.same(all([',,a,,b,']), [0, 'a,b'], 'empty words are dropped');
  t.throws(
    () => all(['a="x', 'b']),
    { code: 'ERR_INVALID_MOUNT_OPTION', value: 'a="x', message: /unclosed double quote/ },
    'an unclosed quote is refused',
  );
  t.same(all(['rw,nosuid,nodev,relatime,size=65536k,mode=755,dax']), [
    F.NOSUID | F.NODEV | F.RELATIME,
    'size=65536k,mode=755,dax',
  ]);
});

t.test('loop is refused', async (t) => {
  t.throws(() => parseMountOptions(['ro', 'loop']), { code: 'ERR_INVALID_MOUNT_OPTION', value: 'loop' });
  t.throws(() => parseMountOptions(['ro,loop,nodev']), { code: 'ERR_INVALID_MOUNT_OPTION', value: 'loop' });
});

t.test('data must fit in the page the kernel copies', async (t) => {
  t.throws(() => parseMountOptions(['x'.repeat(4097)]), { code: 'ERR_MOUNT_OPTIONS_TOO_LONG' });
  t.throws(
    () => parseMountOptions(['x'.repeat(4096)]),
    { code: 'ERR_MOUNT_OPTIONS_TOO_LONG' },
    'the kernel would cut the last byte',
  );
  t.equal(parseMountOptions(['x'.repeat(4095)]).data.length, 4095);
  t.throws(() => parseMountOptions(['a'.repeat(3000), 'b'.repeat(1200)]), { code: 'ERR_MOUNT_OPTIONS_TOO_LONG' });
  t.equal(parseMountOptions(['ro', 'x'.repeat(4095), 'nodev']).flags, F.RDONLY | F.NODEV, 'flag words do not count');
});

t.test('bad input from JavaScript gets a typed error', async (t) => {
  t.throws(() => parseMountOptions('ro' as unknown as string[]), { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
  t.throws(() => parseMountOptions([1 as unknown as string]), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => parseMountOptions([undefined as unknown as string]), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => parseMountOptions(['ro\0rw']), { code: 'ERR_INVALID_MOUNT_OPTION', value: 'ro\0rw' });
  t.throws(() => parseMountOptions(['x'.repeat(1 << 20)]), { code: 'ERR_MOUNT_OPTIONS_TOO_LONG' });
});

t.test('lists past the native inline buffer, with multi-byte text at its edge, parse whole', async (t) => {
  // The native side reads short lists into a 512-byte buffer and longer ones onto the heap; a
  // UTF-8 sequence straddling the buffer's end must never be cut.
  const wrong: string[] = [];
  for (let pad = 495; pad <= 515; pad++) {
    for (const tail of ['é', '€', '😀', 'é€😀']) {
      const word = `x=${'a'.repeat(pad)}${tail}`;
      const p = parseMountOptions([`ro,${word}`, 'nodev']);
      if (p.flags !== (F.RDONLY | F.NODEV) || p.data !== word) wrong.push(`${pad}${tail}`);
    }
  }
  t.same(wrong, [], 'every list parsed to its flags and its exact data');
  const many = [...Array<string>(300).fill('ro'), 'rw', 'size=1m'];
  t.ok(many.join('\0').length > 512);
  t.same(all(many), [0, 'size=1m'], 'later words still win in a long list');
});

t.test('a detached result buffer is refused rather than written through', async (t) => {
  const out = execFileSync(
    process.execPath,
    [...process.execArgv, join(__dirname, '..', 'fixtures', 'detached-scratch.ts')],
    {
      encoding: 'utf8',
      timeout: 60000,
    },
  );
  t.same(JSON.parse(out), { before: [F.RDONLY, ''], after: 'kata-storage: the native scratch buffer was detached' });
});
