// Sandbox.updateEphemeralMounts (Kata's UpdateEphemeralMounts): held ephemeral tmpfs storages are
// remounted with new options; anything else is refused with the mount unchanged.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox, effectiveMountApi, newMountApiSupport, remount, tmpfsSizeBytes, type Storage } from '../../lib/index';
import { cannotMount, mountAt, mountSnapshot, scratchDir } from '../helpers/mountinfo';

const emptyDir = (mountPoint: string, size: string): Storage => ({
  driver: 'ephemeral',
  source: 'tmpfs',
  fstype: 'tmpfs',
  options: ['nosuid', 'nodev', `size=${size}`, 'mode=0750'],
  mountPoint,
});

t.test('tmpfs size words', async (t) => {
  t.equal(tmpfsSizeBytes('4096'), 4096);
  t.equal(tmpfsSizeBytes('2m'), 2 * 2 ** 20);
  t.equal(tmpfsSizeBytes('1G'), 2 ** 30);
  t.equal(tmpfsSizeBytes('0'), 0);
  t.ok(tmpfsSizeBytes('50%') > 0);
  for (const bad of ['', 'm', '1x', '-1', '1.5m', '12345678901234567890'])
    t.throws(() => tmpfsSizeBytes(bad), { code: 'ERR_INVALID_MOUNT_OPTION', value: `size=${bad}` }, bad);
});

const apis = (['legacy', 'new'] as const).filter((a) => a === 'legacy' || newMountApiSupport().fspick);

t.test('updateEphemeralMounts for real', { skip: cannotMount }, async (t) => {
  for (const api of apis) {
    t.test(
      `grows and shrinks a held emptyDir in place (${api}: ${api === 'new' ? 'fspick + FSCONFIG_CMD_RECONFIGURE' : 'MS_REMOUNT'})`,
      async (t) => {
        const root = scratchDir(t);
        const sb = new Sandbox({ allowedRoots: [root], mountApi: api });
        const mp = join(root, 'empty');
        await sb.addStorages([emptyDir(mp, '1m')], { containerId: 'c' });
        const before = mountAt(mp)!;
        t.ok(before.superOptions.includes('size=1024k'), before.superOptions.join(','));
        writeFileSync(join(mp, 'data'), Buffer.alloc(300 * 1024));
        const r = await sb.updateEphemeralMounts([emptyDir(mp, '4m')]);
        t.same(r, [{ mountPoint: mp, mountApi: api }]);
        const after = mountAt(mp)!;
        t.ok(after.superOptions.includes('size=4096k'), after.superOptions.join(','));
        t.equal(after.id, before.id, 'the same mount, remounted');
        t.same(
          after.mountOptions.filter((o) => o === 'nosuid' || o === 'nodev').sort(),
          ['nodev', 'nosuid'],
          'per-mount flags kept',
        );
        t.ok(after.superOptions.includes('mode=750'), 'mode kept');
        await sb.updateEphemeralMounts([emptyDir(mp, '512k')]);
        t.ok(mountAt(mp)!.superOptions.includes('size=512k'), 'shrunk, still above what is used');
        await sb.removeContainer('c');
        t.equal(mountAt(mp), undefined);
      },
    );
  }

  t.test('refusals change nothing: not held, not ephemeral, not tmpfs, below use, bad options', async (t) => {
    const root = scratchDir(t);
    const sb = new Sandbox({ allowedRoots: [root] });
    const mp = join(root, 'empty');
    const local = join(root, 'local');
    const huge = join(root, 'overlay-ish');
    await sb.addStorages(
      [
        emptyDir(mp, '1m'),
        { driver: 'local', source: 'local', fstype: 'local', mountPoint: local },
        { driver: 'ephemeral', source: 'x', fstype: 'tmpfs', mountPoint: huge },
      ],
      { containerId: 'c' },
    );
    writeFileSync(join(mp, 'data'), Buffer.alloc(600 * 1024));
    const before = mountSnapshot();
    await t.rejects(sb.updateEphemeralMounts([emptyDir(join(root, 'nope'), '2m')]), {
      code: 'ERR_STORAGE_NOT_FOUND',
      value: join(root, 'nope'),
    });
    await t.rejects(sb.updateEphemeralMounts([{ ...emptyDir(local, '2m') }]), {
      code: 'ERR_INVALID_STORAGE',
      field: 'driver',
      value: 'local',
    });
    await t.rejects(sb.updateEphemeralMounts([{ ...emptyDir(mp, '2m'), driver: 'local' }]), {
      code: 'ERR_INVALID_STORAGE',
      field: 'driver',
    });
    await t.rejects(sb.updateEphemeralMounts([{ ...emptyDir(mp, '2m'), fstype: 'hugetlbfs' }]), {
      code: 'ERR_INVALID_STORAGE',
      field: 'fstype',
    });
    await t.rejects(sb.updateEphemeralMounts([emptyDir(mp, '512k')]), {
      code: 'ERR_EPHEMERAL_SIZE_TOO_SMALL',
      value: mp,
      requestedBytes: 512 * 1024,
    });
    await t.rejects(sb.updateEphemeralMounts([{ ...emptyDir(mp, '2m'), options: ['size=2m,nr_inodes=1'] }]), {
      code: 'ERR_EPHEMERAL_SIZE_TOO_SMALL',
    });
    await t.rejects(sb.updateEphemeralMounts([emptyDir(mp, 'lots')]), {
      code: 'ERR_INVALID_MOUNT_OPTION',
      value: 'size=lots',
    });
    await t.rejects(sb.updateEphemeralMounts([{ ...emptyDir(mp, '2m'), options: ['loop'] }]), {
      code: 'ERR_INVALID_MOUNT_OPTION',
    });
    await t.rejects(sb.updateEphemeralMounts([{ ...emptyDir(mp, '2m'), options: ['mode=999'] }]), {
      code: 'ERR_INVALID_MOUNT_OPTION',
    });
    // One bad storage stops the whole list before anything is remounted.
    await t.rejects(sb.updateEphemeralMounts([emptyDir(huge, '2m'), emptyDir(mp, '4k')]), {
      code: 'ERR_EPHEMERAL_SIZE_TOO_SMALL',
    });
    await t.rejects(sb.updateEphemeralMounts('x' as never), { code: 'ERR_INVALID_ARG_TYPE' });
    t.equal(mountSnapshot(), before, 'mountinfo before == after');
    t.same(
      await sb.updateEphemeralMounts([{ ...emptyDir(mp, '1m'), options: [] }]),
      [],
      'no options: nothing to do, as in Kata',
    );
    await sb.removeContainer('c');
  });

  t.test(
    'remount(): the kernel refusing is a Node-shaped error with its message',
    { skip: !newMountApiSupport().fspick && 'no fspick' },
    async (t) => {
      const root = scratchDir(t);
      const sb = new Sandbox({ allowedRoots: [root] });
      const mp = join(root, 'e');
      await sb.addStorages([emptyDir(mp, '1m')], { containerId: 'c' });
      await t.rejects(remount(mp, ['size=bogus'], { mountApi: 'new' }), { code: 'EINVAL', syscall: 'fsconfig' });
      await t.rejects(remount(join(root, 'not-mounted'), ['size=1m'], { mountApi: 'new' }), {
        code: 'ENOENT',
        syscall: 'fspick',
      });
      await t.rejects(remount(mp, ['size=bogus'], { mountApi: 'legacy' }), { code: 'EINVAL', syscall: 'mount' });
      t.equal(effectiveMountApi('auto', ['remount']), 'legacy', 'mount() still takes remounts through mount(2)');
      await sb.removeContainer('c');
    },
  );
});
