import t from 'tap';
import { mkdirSync, writeFileSync, openSync, closeSync, symlinkSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { mount, mountSync, umount, umountSync, isMountPoint, effectiveMountApi } from '../../lib/index';
import { abortedMountsSettled } from '../../lib/mount';
import { cannotMount, mountAt, mountSnapshot, scratchDir, nestedMounts } from '../helpers/mountinfo';

// The suite runs under each API (npm run test:mount-apis); the failing syscall differs by API.
const newApi = effectiveMountApi() === 'new';
t.comment(`mount API in use: ${effectiveMountApi()}`);

t.test('mounts for real', { skip: cannotMount }, async (t) => {
  t.test('tmpfs with flags and data shows them in mountinfo', async (t) => {
    const dir = scratchDir(t);
    mountSync('tmpfs', dir, 'tmpfs', ['nodev,nosuid', 'size=1m', 'mode=700']);
    const m = mountAt(dir)!;
    t.ok(m, 'mounted');
    t.equal(m.fstype, 'tmpfs');
    t.equal(m.source, 'tmpfs');
    t.ok(m.mountOptions.includes('nodev'), 'nodev');
    t.ok(m.mountOptions.includes('nosuid'), 'nosuid');
    t.ok(m.mountOptions.includes('rw'), 'rw');
    t.ok(m.superOptions.includes('size=1024k'), `size in ${m.superOptions}`);
    t.ok(m.superOptions.includes('mode=700'), 'mode');
    t.equal(isMountPoint(dir), true);
    umountSync(dir);
    t.equal(mountAt(dir), undefined, 'unmounted');
    t.equal(isMountPoint(dir), false);
  });

  t.test('async mount and umount', async (t) => {
    const dir = scratchDir(t);
    await mount('tmpfs', dir, 'tmpfs', ['noexec', 'size=64k']);
    const m = mountAt(dir)!;
    t.ok(m.mountOptions.includes('noexec'));
    t.ok(m.superOptions.includes('size=64k'));
    await umount(dir);
    t.equal(mountAt(dir), undefined);
  });

  t.test('bind,ro is really read-only (the remount happens)', async (t) => {
    const dir = scratchDir(t);
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    mkdirSync(src);
    mkdirSync(dst);
    writeFileSync(join(src, 'f'), 'hello');
    await mount(src, dst, '', ['bind', 'ro', 'nosuid', 'nodev', 'noexec']);
    const m = mountAt(dst)!;
    t.ok(m.mountOptions.includes('ro'), `ro in ${m.mountOptions}`);
    for (const f of ['nosuid', 'nodev', 'noexec']) t.ok(m.mountOptions.includes(f), f);
    t.equal(readFileSync(join(dst, 'f'), 'utf8'), 'hello', 'content visible through the bind');
    t.throws(() => writeFileSync(join(dst, 'g'), 'x'), { code: 'EROFS' });
    writeFileSync(join(src, 'g'), 'x');
    t.pass('source stays writable');
    await umount(dst);
    t.equal(mountAt(dst), undefined);
  });

  t.test('bind without ro stays writable, no remount needed', async (t) => {
    const dir = scratchDir(t);
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    mkdirSync(src);
    mkdirSync(dst);
    mountSync(src, dst, 'none', ['bind']);
    writeFileSync(join(dst, 'x'), 'y');
    t.equal(readFileSync(join(src, 'x'), 'utf8'), 'y');
    t.equal(isMountPoint(dst), true, 'a bind of a plain directory is a mount point');
    umountSync(dst);
  });

  t.test('rbind,rshared shows shared:N; propagation is its own call', async (t) => {
    const { src, dst } = nestedMounts(scratchDir(t));
    await mount(src, dst, '', ['rbind', 'rshared']);
    const top = mountAt(dst)!;
    const sub = mountAt(join(dst, 'sub'))!;
    t.ok(
      top.optionalFields.some((f) => /^shared:\d+$/.test(f)),
      `top: ${top.optionalFields}`,
    );
    t.ok(sub, 'rbind carried the sub-mount');
    t.ok(
      sub.optionalFields.some((f) => /^shared:\d+$/.test(f)),
      `sub: ${sub.optionalFields}`,
    );
    const srcTop = mountAt(src)!;
    t.notOk(
      srcTop.optionalFields.some((f) => f.startsWith('shared:')),
      'source mount left private',
    );
    mountSync('tmpfs', dst, 'tmpfs', ['private', 'size=4k']);
    t.same(mountAt(dst)!.optionalFields, [], 'private: no propagation fields');
    umountSync(dst);
    umountSync(join(dst, 'sub'));
    umountSync(dst);
    umountSync(join(src, 'sub'));
    umountSync(src);
  });

  t.test('errors have the Node shape and change nothing', async (t) => {
    const dir = scratchDir(t);
    const before = mountSnapshot();
    const missing = join(dir, 'missing');
    const attach = newApi ? 'move_mount' : 'mount';
    t.throws(() => mountSync('tmpfs', missing, 'tmpfs'), {
      code: 'ENOENT',
      errno: -2,
      syscall: attach,
      path: 'tmpfs',
      dest: missing,
      message: `ENOENT: no such file or directory, ${attach} 'tmpfs' -> '${missing}'`,
    });
    await t.rejects(mount('x', dir, 'no-such-fs'), {
      code: 'ENODEV',
      errno: -19,
      syscall: newApi ? 'fsopen' : 'mount',
      path: 'x',
      dest: dir,
    });
    await t.rejects(mount('tmpfs', dir, 'tmpfs', ['size=bogus']), {
      code: 'EINVAL',
      errno: -22,
      syscall: newApi ? 'fsconfig' : 'mount',
    });
    t.throws(() => umountSync(dir), {
      code: 'EINVAL',
      syscall: 'umount2',
      path: dir,
      message: `EINVAL: invalid argument, umount2 '${dir}'`,
    });
    await t.rejects(umount(missing), { code: 'ENOENT', syscall: 'umount2' });
    t.throws(() => mountSync('tmpfs', `${dir}\0x`, 'tmpfs'), { code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError' });
    t.throws(() => mountSync(42 as unknown as string, dir, 'tmpfs'), { code: 'ERR_INVALID_ARG_TYPE' });
    t.throws(() => mountSync('tmpfs', dir, 'tmpfs', ['loop']), { code: 'ERR_INVALID_MOUNT_OPTION', value: 'loop' });
    await t.rejects(mount('tmpfs', dir, 'tmpfs', ['loop']), { code: 'ERR_INVALID_MOUNT_OPTION' });
    await t.rejects(mount('tmpfs', '', 'tmpfs'), { code: 'ERR_INVALID_ARG_VALUE' });
    t.throws(() => umountSync(dir, { busyTimeoutMs: -1 }), { code: 'ERR_INVALID_ARG_VALUE' });
    await t.rejects(umount(dir, { busyTimeoutMs: 1.5 }), { code: 'ERR_INVALID_ARG_VALUE' });
    t.throws(() => umountSync(dir, 5 as unknown as object), { code: 'ERR_INVALID_ARG_TYPE' });
    t.throws(() => isMountPoint(`${dir}\0`), { code: 'ERR_INVALID_ARG_VALUE' });
    t.equal(mountSnapshot(), before, 'mountinfo unchanged');
  });

  t.test('EBUSY: reported, and ridden out by busyTimeoutMs', async (t) => {
    const dir = scratchDir(t);
    mountSync('tmpfs', dir, 'tmpfs', ['size=64k']);
    const fd = openSync(join(dir, 'held'), 'w');
    t.throws(() => umountSync(dir), { code: 'EBUSY', errno: -16, syscall: 'umount2', path: dir });
    await t.rejects(umount(dir, { busyTimeoutMs: 20 }), { code: 'EBUSY' }, 'gives up after the timeout');
    t.ok(mountAt(dir), 'still mounted');
    const started = Date.now();
    setTimeout(() => closeSync(fd), 100);
    await umount(dir, { busyTimeoutMs: 5000 });
    t.ok(Date.now() - started >= 90, 'waited for the holder');
    t.equal(mountAt(dir), undefined, 'unmounted once the file was closed');

    // The sync form blocks this thread, so the holder is another process (its cwd).
    mountSync('tmpfs', dir, 'tmpfs', ['size=64k']);
    const holder = spawn('sleep', ['0.3'], { cwd: dir, stdio: 'ignore' });
    await new Promise((r) => holder.once('spawn', r));
    t.throws(() => umountSync(dir), { code: 'EBUSY' });
    umountSync(dir, { busyTimeoutMs: 10000 });
    t.equal(mountAt(dir), undefined);
  });

  t.test('detach is opt-in and works on a busy mount', async (t) => {
    const dir = scratchDir(t);
    mountSync('tmpfs', dir, 'tmpfs', ['size=64k']);
    const fd = openSync(join(dir, 'held'), 'w');
    t.throws(() => umountSync(dir), { code: 'EBUSY' });
    umountSync(dir, { detach: true });
    t.equal(mountAt(dir), undefined);
    closeSync(fd);
  });

  t.test('umount never follows a symlink at the target', async (t) => {
    const dir = scratchDir(t);
    const real = join(dir, 'real');
    const link = join(dir, 'link');
    mkdirSync(real);
    symlinkSync(real, link);
    mountSync('tmpfs', real, 'tmpfs', ['size=64k']);
    t.throws(() => umountSync(link), { code: 'EINVAL', syscall: 'umount2' });
    t.ok(mountAt(real), 'the real mount is untouched');
    t.equal(isMountPoint(link), false, 'isMountPoint does not follow the link either');
    umountSync(real);
  });

  t.test('an aborted signal mounts nothing', async (t) => {
    const dir = scratchDir(t);
    const before = mountSnapshot();
    const ac = new AbortController();
    ac.abort();
    await t.rejects(mount('tmpfs', dir, 'tmpfs', [], { signal: ac.signal }), { name: 'AbortError', code: 'ABORT_ERR' });
    t.equal(mountSnapshot(), before);
  });

  t.test('a signal that fires mid-mount rejects at once and the mount is undone', async (t) => {
    const dir = scratchDir(t);
    const before = mountSnapshot();
    const ac = new AbortController();
    const p = mount('tmpfs', dir, 'tmpfs', ['size=64k'], { signal: ac.signal });
    ac.abort(new Error('caller gave up'));
    await t.rejects(p, { code: 'ABORT_ERR' });
    await abortedMountsSettled();
    t.equal(mountSnapshot(), before, 'nothing left mounted');
  });

  t.test('a signal that never fires changes nothing', async (t) => {
    const dir = scratchDir(t);
    const ac = new AbortController();
    await mount('tmpfs', dir, 'tmpfs', ['size=64k'], { signal: ac.signal });
    t.ok(mountAt(dir));
    await t.rejects(mount('tmpfs', join(dir, 'nope'), 'tmpfs', [], { signal: ac.signal }), { code: 'ENOENT' });
    await umount(dir);
  });
});

t.test('isMountPoint', { skip: cannotMount }, async (t) => {
  const dir = scratchDir(t);
  t.equal(isMountPoint('/proc'), true);
  t.equal(isMountPoint(dir), false);
  t.equal(isMountPoint(join(dir, 'missing')), false);
  writeFileSync(join(dir, 'file'), '');
  t.equal(isMountPoint(join(dir, 'file', 'below')), false, 'ENOTDIR is "not a mount point"');
});
