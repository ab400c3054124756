// Operator-facing events on node:diagnostics_channel. Publishing costs nothing when nobody
// subscribes, so every mount, unmount and device wait is reported with its duration.
import * as diagnostics_channel from 'node:diagnostics_channel';

export interface MountEvent {
  driver: string;
  source: string;
  mountPoint: string;
  fstype: string;
  options: readonly string[];
  containerId?: string;
  /** The storage asks for fsGroup (or fsgid=) but its mount is read-only: ownership left as is. */
  fsGroupSkipped?: 'read-only';
  durationMs: number;
  error?: Error;
}

export interface UmountEvent {
  driver: string;
  mountPoint: string;
  /** Why the storage was released: 'release' (last reference), 'rollback' (failed request), 'destroy'. */
  reason: 'release' | 'rollback' | 'destroy';
  /**
   * 'umount': the unmount of `path` (published every time). 'remove': a best-effort removal of a
   * directory the sandbox created (published only when it failed: the release still succeeded,
   * `path` is kept and its removal retried by later releases and destroy()).
   */
  step: 'umount' | 'remove';
  /** What was unmounted or could not be removed. */
  path: string;
  durationMs: number;
  error?: Error;
}

export interface WaitEvent {
  driver: string;
  /** What was waited for: a PCI path, CCW bus id, SCSI address or /dev node. */
  source: string;
  device?: string;
  durationMs: number;
  error?: Error;
}

export interface MkfsEvent {
  device: string;
  fstype: string;
  durationMs: number;
  error?: Error;
}

/** What a watchable-bind poller did or met (Kata logs these; we publish them). */
export interface WatchEvent {
  mountPoint: string;
  source: string;
  /**
   * 'sync': changes applied (counts); 'fallback': the source outgrew Kata's limits and a plain bind
   * replaced the copy; 'source-missing': the source is gone (polling goes on); 'error': a poll
   * failed otherwise (polling goes on).
   */
  event: 'sync' | 'fallback' | 'source-missing' | 'error';
  added?: number;
  changed?: number;
  removed?: number;
  /** For 'fallback': which limit, and the value found. */
  limit?: 'entries' | 'bytes';
  value?: number;
  error?: Error;
}

export const channels = Object.freeze({
  mount: diagnostics_channel.channel('kata-storage:mount'),
  umount: diagnostics_channel.channel('kata-storage:umount'),
  wait: diagnostics_channel.channel('kata-storage:wait'),
  mkfs: diagnostics_channel.channel('kata-storage:mkfs'),
  watch: diagnostics_channel.channel('kata-storage:watch'),
});

export function now(): number {
  return performance.now();
}

/** Runs `fn`, publishing `build(durationMs, error)` on `channel` when someone listens. */
export async function timed<T>(
  channel: diagnostics_channel.Channel,
  fn: () => Promise<T>,
  build: (durationMs: number, error: Error | undefined, value: T | undefined) => object,
): Promise<T> {
  if (!channel.hasSubscribers) return fn();
  const start = now();
  try {
    const value = await fn();
    channel.publish(build(now() - start, undefined, value));
    return value;
  } catch (err) {
    channel.publish(build(now() - start, err as Error, undefined));
    throw err;
  }
}
