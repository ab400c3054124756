// planSandbox: Kata's setupStorages (kata_agent.go), the storages the agent gets with
// CreateSandbox: the shared filesystem and the sandbox's /dev/shm.
import { posix } from 'node:path';
import type { Storage } from '../storage';
import { DRIVER_9P_TYPE, DRIVER_EPHEMERAL_TYPE, DRIVER_VIRTIOFS_TYPE } from '../drivers';
import { resolveSettings, type ResolvedSettings, type RuntimeSettings } from './settings';

/** Kata's mountGuestTag: the tag virtiofsd / 9p export the share under. */
export const SHARED_FS_TAG = 'kataShared';
/** 9p options Kata always uses (sharedDir9pOptions); msize= is added from msize_9p. */
const NINE_P_OPTIONS = ['trans=virtio,version=9p2000.L,cache=mmap', 'nodev'];
/** Options of the sandbox shm (and of a container's own shm when the sandbox has none). */
export function shmOptions(size: number): string[] {
  return ['noexec', 'nosuid', 'nodev', 'mode=1777', `size=${size}`];
}

/** Where the sandbox shm is mounted in the guest (`<guestSandboxDir>/shm`). */
export function sandboxShmPath(s: ResolvedSettings): string {
  return posix.join(s.guestSandboxDir, 'shm');
}

/**
 * DAX maps file contents straight from the host's page cache, so it needs a cache mode that keeps
 * pages (not never/metadata) and a DAX window (virtio_fs_cache_size > 0); with either missing,
 * virtiofsd would crash on the guest's DAX mapping request (Kata's comment in setupStorages).
 */
export function virtioFsUsesDax(s: Pick<ResolvedSettings, 'virtioFsCache' | 'virtioFsCacheSize'>): boolean {
  return s.virtioFsCache !== 'never' && s.virtioFsCache !== 'metadata' && s.virtioFsCacheSize !== 0;
}

/**
 * The shared filesystem's mount point as Kata's runtimes send it: with a trailing '/' (Go's
 * defaultKataGuestSharedDir and runtime-rs's DEFAULT_KATA_GUEST_SHARE_DIR are
 * '/run/kata-containers/shared/containers/'). The Sandbox takes it as the same directory.
 */
export function sharedDirMountPoint(s: Pick<ResolvedSettings, 'guestSharedDir'>): string {
  return s.guestSharedDir === '/' ? '/' : `${s.guestSharedDir}/`;
}

function sandboxStorages(s: ResolvedSettings): Storage[] {
  const storages: Storage[] = [];
  if (s.sharedFs === 'virtio-fs') {
    storages.push({
      driver: DRIVER_VIRTIOFS_TYPE,
      source: SHARED_FS_TAG,
      fstype: 'virtiofs',
      options: virtioFsUsesDax(s) ? ['dax'] : [],
      mountPoint: sharedDirMountPoint(s),
    });
  } else if (s.sharedFs === 'virtio-9p') {
    storages.push({
      driver: DRIVER_9P_TYPE,
      source: SHARED_FS_TAG,
      fstype: '9p',
      options: [...NINE_P_OPTIONS, `msize=${s.msize9p}`],
      mountPoint: sharedDirMountPoint(s),
    });
  }
  if (s.shmSize > 0) {
    storages.push({
      driver: DRIVER_EPHEMERAL_TYPE,
      source: 'shm',
      fstype: 'tmpfs',
      options: shmOptions(s.shmSize),
      mountPoint: sandboxShmPath(s),
    });
  }
  return storages;
}

/**
 * The sandbox's storages (Kata's setupStorages): with sharedFs `virtio-fs`, the share at
 * `guestSharedDir` written with a trailing '/', exactly as Kata's runtimes send it (`dax` only when virtioFsCache is not never/metadata and virtioFsCacheSize is
 * not 0); with `virtio-9p`, 9p with `msize=<msize9p>`; with `none`, no share. Plus an ephemeral
 * tmpfs `<guestSandboxDir>/shm` of `shmSize` bytes when shmSize > 0. Pure: nothing is touched.
 * Throws ERR_INVALID_RUNTIME_SETTINGS (with `path`) for bad settings.
 */
export function planSandbox(settings?: RuntimeSettings): { storages: Storage[] } {
  return { storages: sandboxStorages(resolveSettings(settings)) };
}
