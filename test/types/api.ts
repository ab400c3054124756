// Compile-time tests of the published types (dist/*.d.ts through the package's own exports map,
// as a consumer imports them). Checked by `tsc -p test/types` in test/package/npm-package.test.ts:
// each expected error below must really be an error, or tsc fails.
import { expectTypeOf } from 'expect-type';
import {
  Sandbox,
  StorageError,
  isStorageError,
  normalizeStorage,
  storageChannels,
  storageTracing,
  type KataStorage,
  type MountEvent,
  type MountTrace,
  type Storage,
  type StorageErrorCode,
  type StorageInput,
  type SystemError,
  type UmountEvent,
  type WaitTrace,
} from 'kata-storage';

declare const sandbox: Sandbox;

// addStorages takes our form and Kata's protobuf JSON, both typed.
void sandbox.addStorages([
  {
    driver: 'ephemeral',
    source: 'shm',
    fstype: 'tmpfs',
    options: ['size=1m'],
    mountPoint: '/run/kata-containers/shm',
    shared: true,
  },
  {
    driver: 'blk',
    source: '02',
    fstype: 'ext4',
    driver_options: ['create_filesystem'],
    mount_point: '/run/kata-containers/d',
    fs_group: { group_id: 2000, group_change_policy: 1 },
  },
]);
const fromJson: readonly KataStorage[] = [];
void sandbox.addStorages(fromJson);
const frozen = [{ driver: 'local', source: 'local', fstype: 'local', mountPoint: '/run/kata-containers/l' }] as const;
void sandbox.addStorages(frozen);
expectTypeOf(sandbox.addStorages).parameter(0).toEqualTypeOf<readonly StorageInput[]>();
expectTypeOf(sandbox.addStorages).returns.toEqualTypeOf<Promise<string[]>>();
expectTypeOf(normalizeStorage).returns.toEqualTypeOf<Storage>();
// updateEphemeralMounts takes what addStorages takes (Kata's UpdateEphemeralMountsRequest.storages).
expectTypeOf(sandbox.updateEphemeralMounts).parameter(0).toEqualTypeOf<readonly StorageInput[]>();
void sandbox.updateEphemeralMounts([
  {
    driver: 'ephemeral',
    source: 'tmpfs',
    fstype: 'tmpfs',
    options: ['size=2m'],
    mount_point: '/run/kata-containers/e',
  },
]);
// @ts-expect-error a number is not a storage
void sandbox.updateEphemeralMounts([42]);
// @ts-expect-error a key typo (mountPont)
void sandbox.updateEphemeralMounts([{ driver: 'ephemeral', source: 'tmpfs', fstype: 'tmpfs', mountPont: '/run/x' }]);

// @ts-expect-error a number is not a storage
void sandbox.addStorages([42]);
// @ts-expect-error a key typo in our form (mountPont)
void sandbox.addStorages([{ driver: 'local', source: 'local', fstype: 'local', mountPont: '/run/kata-containers/l' }]);
// @ts-expect-error a key typo in Kata's form (mount_poin)
void sandbox.addStorages([{ driver: 'local', source: 'local', fstype: 'local', mount_poin: '/run/kata-containers/l' }]);
// @ts-expect-error an unknown key next to correct ones
void sandbox.addStorages([{ driver: 'local', source: 'local', fstype: 'local', mountPoint: '/run/x', readOnly: true }]);
void sandbox.addStorages([
  {
    driver: 'blk',
    source: '02',
    fstype: 'ext4',
    mount_point: '/run/x',
    // @ts-expect-error group_change_policy is 0, 1, 'Always' or 'OnRootMismatch'
    fs_group: { group_id: 1, group_change_policy: 2 },
  },
]);
// One field under two names does not compile (normalizeStorage refuses it at run time too).
void sandbox.addStorages([
  // @ts-expect-error mountPoint and mount_point
  { driver: 'local', source: 'local', fstype: 'local', mountPoint: '/run/x', mount_point: '/run/y' },
]);
void sandbox.addStorages([
  // @ts-expect-error driverOptions and driver_options
  { driver: 'blk', source: '02', fstype: 'ext4', mountPoint: '/run/x', driverOptions: [], driver_options: [] },
]);
void sandbox.addStorages([
  // @ts-expect-error fsGroup and fs_group
  {
    driver: 'blk',
    source: '02',
    fstype: 'ext4',
    mountPoint: '/run/x',
    fsGroup: { groupId: 1 },
    fs_group: { group_id: 1 },
  },
]);
void sandbox.addStorages([
  {
    driver: 'blk',
    source: '02',
    fstype: 'ext4',
    mountPoint: '/run/x',
    // @ts-expect-error groupId and group_id
    fsGroup: { groupId: 1, group_id: 1 },
  },
]);
// Different fields under different namings are fine: each is read once.
void sandbox.addStorages([
  {
    driver: 'blk',
    source: '02',
    fstype: 'ext4',
    mount_point: '/run/x',
    fsGroup: { group_id: 1, groupChangePolicy: 'Always' },
  },
]);
// Our own form and Kata's, as values, are inputs.
declare const ours: Storage;
declare const theirs: KataStorage;
void sandbox.addStorages([ours, theirs]);
// @ts-expect-error options are strings
void sandbox.addStorages([{ driver: 'local', source: 'local', fstype: 'local', mountPoint: '/run/x', options: [1] }]);

// The error-code union is closed and complete.
expectTypeOf<'ERR_MKFS_FAILED'>().toMatchTypeOf<StorageErrorCode>();
expectTypeOf<'ERR_HUGEPAGES_UNAVAILABLE'>().toMatchTypeOf<StorageErrorCode>();
expectTypeOf<'ERR_NOT_DEVICE_NODE'>().toMatchTypeOf<StorageErrorCode>();
expectTypeOf<'ERR_INVALID_STORAGE'>().toMatchTypeOf<StorageErrorCode>();
expectTypeOf<'ERR_NO_SUCH_CODE'>().not.toMatchTypeOf<StorageErrorCode>();
// @ts-expect-error an unknown code
void new StorageError('ERR_TYPO', 'x');

// Extra fields are typed, and narrowed by code.
declare const err: unknown;
if (isStorageError(err, 'ERR_INVALID_STORAGE')) {
  expectTypeOf(err.code).toEqualTypeOf<'ERR_INVALID_STORAGE'>();
  expectTypeOf(err.field).toEqualTypeOf<string>();
  expectTypeOf(err.path).toEqualTypeOf<string | undefined>();
}
if (isStorageError(err, 'ERR_HUGEPAGES_UNAVAILABLE')) {
  expectTypeOf(err.allocated).toEqualTypeOf<number>();
  expectTypeOf(err.value).toEqualTypeOf<number>();
}
if (isStorageError(err)) {
  expectTypeOf(err.code).toEqualTypeOf<StorageErrorCode>();
  expectTypeOf(err.rollbackErrors).toEqualTypeOf<Error[] | undefined>();
}
declare const sys: SystemError;
expectTypeOf(sys.kernelMessages).toEqualTypeOf<string[] | undefined>();
expectTypeOf(sys.nearestEvents).toEqualTypeOf<string[] | undefined>();
expectTypeOf(sys.errno).toEqualTypeOf<number>();

// Event payloads are typed.
storageChannels.mount.subscribe((m) => {
  expectTypeOf(m).toEqualTypeOf<MountEvent>();
  expectTypeOf(m.durationMs).toEqualTypeOf<number>();
});
storageChannels.umount.subscribe((m) => {
  expectTypeOf(m).toEqualTypeOf<UmountEvent>();
  expectTypeOf(m.containerId).toEqualTypeOf<string | undefined>();
  expectTypeOf(m.reason).toEqualTypeOf<'release' | 'rollback' | 'destroy'>();
});
storageTracing.mount.subscribe({
  start(ctx) {
    expectTypeOf(ctx).toEqualTypeOf<MountTrace>();
    expectTypeOf(ctx.target).toEqualTypeOf<string>();
  },
});
storageTracing.wait.subscribe({
  asyncEnd(ctx) {
    expectTypeOf(ctx).toEqualTypeOf<WaitTrace>();
    expectTypeOf(ctx.result).toEqualTypeOf<string | undefined>();
  },
});
// @ts-expect-error a mount event has no such field
storageChannels.mount.subscribe((m) => m.mountpoint);
