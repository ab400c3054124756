// erofs.multi-layer: the overlay of Kata's multi-layer EROFS rootfs. The Sandbox hands us one
// storage whose `layers` are the request's marked storages (multi-layer.ts beside it). As Kata's
// handle_multi_layer_erofs_group: wait for every layer's disk, mount the ext4 upper at
// <root>/<container>/multi-layer/upper, create the `X-kata.mkdir.path=` directories, mount each
// EROFS lower read-only at .../lower-N, then the overlay at the storage's mount point. Every mount
// and directory goes through the context, so release and rollback undo them in reverse. No
// `X-kata.*` word ever reaches the kernel. Its lowerdir= names every layer under one directory:
// the native mount passes them relative to it (mount(2)) or one by one (`lowerdir+`, the new
// API), so hundreds of layers fit where their absolute paths would overflow the page mount(2)
// copies (45 layers under a 64-hex container id already do).
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync } from 'node:fs';
import { join, posix } from 'node:path';
import {
  assertBlockDevice,
  findPciBlockDevice,
  findScsiBlockDevice,
  parsePciPathFull,
  parseScsiAddress,
  type WaitOptions,
} from '../devices';
import { DRIVER_BLK_PCI_TYPE, DRIVER_SCSI_TYPE } from '../drivers';
import { StorageError, abortError } from '../errors';
import { MultiLayerMarkers as M, isLowerLayer, isUpperLayer } from './multi-layer';
import { native } from '../native';
import { parseMountOptions } from '../options';
import type { DeviceContext, StorageContext, StorageHandler } from '../handler';
import { validateStorage, type Storage } from '../storage';

const MOUNT_UPPER = '{{ mount 0 }}';
const MOUNT_LOWER = '{{ mount 1 }}';

function invalid(field: string, value: unknown, message: string): StorageError {
  return new StorageError('ERR_INVALID_STORAGE', message, { value, field });
}

function partitionNumber(s: Storage): number | undefined {
  const o = (s.options ?? []).find((w) => w.startsWith(M.partitionNumber));
  if (o === undefined) return undefined;
  const v = o.slice(M.partitionNumber.length);
  if (!/^\d{1,10}$/.test(v) || Number(v) > 0xffffffff || Number(v) === 0) {
    throw new StorageError('ERR_INVALID_MOUNT_OPTION', `'${o}' must name a partition (1 to 4294967295)`, { value: o });
  }
  return Number(v);
}

const gpt = (s: Storage): boolean => (s.options ?? []).includes(M.gptPartitioned);

/** A mkdir directive: which mount it is relative to and the path below it (no '.' or '..'). */
interface Mkdir {
  base: 'upper' | 'lower';
  rel: string;
}

// Kata's parse_mkdir_directive + resolve_mkdir_path: the path before the first ':' with
// `{{ mount 0 }}` (the upper layer's mount) or `{{ mount 1 }}` (the first lower layer); any other
// path is taken below the upper layer (scoped_join). Escapes are refused here, not clamped.
function mkdirDirective(word: string): Mkdir {
  const raw = word.slice(M.mkdirPath.length).split(':')[0]!;
  const bad = (why: string): StorageError =>
    new StorageError('ERR_INVALID_MOUNT_OPTION', `'${word}' ${why}`, { value: word });
  if (raw === '') throw bad('names no directory');
  let base: Mkdir['base'] = 'upper';
  let rest = raw;
  if (raw.startsWith(MOUNT_UPPER)) rest = raw.slice(MOUNT_UPPER.length);
  else if (raw.startsWith(MOUNT_LOWER)) [base, rest] = ['lower', raw.slice(MOUNT_LOWER.length)];
  const parts = rest.split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '..' || p === '.' || p.includes('{{')))
    throw bad("must stay below its layer (no '.', '..' or other templates)");
  if (parts.length === 0) throw bad('names the layer itself, not a directory in it');
  return { base, rel: parts.join('/') };
}

function mkdirDirectives(layers: readonly Storage[]): Mkdir[] {
  return layers.flatMap((s) => (s.options ?? []).filter((o) => o.startsWith(M.mkdirPath)).map(mkdirDirective));
}

function checkLayer(s: Storage): void {
  if (s.driver === DRIVER_BLK_PCI_TYPE) {
    if (!s.source.startsWith('/')) parsePciPathFull(s.source);
  } else if (s.driver === DRIVER_SCSI_TYPE) {
    parseScsiAddress(s.source);
  } else {
    // Kata's resolve_base_device_path knows these two.
    throw invalid(
      'driver',
      s.driver,
      `a multi-layer EROFS layer must come through driver 'blk' or 'scsi', not '${s.driver}'`,
    );
  }
  if ((s.options ?? []).includes(M.dmverityEnabled)) {
    throw new StorageError(
      'ERR_INVALID_MOUNT_OPTION',
      `'${M.dmverityEnabled}' on a multi-layer layer is not supported: use a block storage with verity_info=`,
      {
        value: M.dmverityEnabled,
      },
    );
  }
  if (gpt(s) && partitionNumber(s) === undefined)
    throw invalid('options', s.options, `a GPT-partitioned layer needs ${M.partitionNumber}N`);
  partitionNumber(s);
}

interface Layout {
  upper: Storage | undefined;
  lowers: Storage[];
  mkdirs: Mkdir[];
}

function layout(storage: Storage, roots: readonly string[], containerId: string | undefined): Layout {
  const layers = storage.layers;
  if (layers === undefined || layers.length === 0) {
    throw invalid(
      'driver',
      storage.driver,
      `an ${storage.driver} request is made of storages carrying Kata's multi-layer markers (${M.multiLayer})`,
    );
  }
  if (containerId !== undefined && (containerId === '' || containerId.includes('/') || containerId.includes('..'))) {
    throw invalid('containerId', containerId, 'a multi-layer EROFS container id must be usable as a directory name');
  }
  let upper: Storage | undefined;
  const lowers: Storage[] = [];
  for (const s of layers) {
    validateStorage(s, roots);
    if ((s.options ?? []).includes(M.upper) && s.fstype !== 'ext4') {
      throw invalid('fstype', s.fstype, `the multi-layer upper layer must be ext4, not '${s.fstype}'`);
    }
    if (isUpperLayer(s)) {
      if (upper !== undefined)
        throw invalid('options', s.options, 'a multi-layer EROFS request takes exactly one ext4 upper layer');
      upper = s;
    } else if (isLowerLayer(s)) {
      lowers.push(s);
    } else {
      throw invalid(
        'options',
        s.options,
        `storage at ${s.mountPoint} carries ${M.multiLayer} but is neither an ext4 upper nor an EROFS lower layer`,
      );
    }
    checkLayer(s);
  }
  if (lowers.length === 0)
    throw invalid('options', storage.layers, 'a multi-layer EROFS request needs at least one EROFS lower layer');
  // GPT mode: lower partition number = higher overlay priority (Kata sorts by it).
  if (lowers.some(gpt)) lowers.sort((a, b) => (partitionNumber(a) ?? 0xffffffff) - (partitionNumber(b) ?? 0xffffffff));
  return { upper, lowers, mkdirs: mkdirDirectives(layers) };
}

// Kata's get_partition_device_path: /dev/vda -> /dev/vda1, /dev/nvme0n1 -> /dev/nvme0n1p1.
const partitionPath = (disk: string, n: number): string => (/\d$/.test(disk) ? `${disk}p${n}` : `${disk}${n}`);

async function layerDevice(s: Storage, ctx: DeviceContext): Promise<string> {
  const opts: WaitOptions = { sysfsRoot: ctx.sysfsRoot, devRoot: ctx.devRoot, timeoutMs: ctx.hotplugTimeoutMs };
  if (ctx.signal) opts.signal = ctx.signal;
  let dev = await ctx.waitFor(s.source, async () => {
    if (s.driver === DRIVER_SCSI_TYPE) return findScsiBlockDevice(s.source, opts);
    return s.source.startsWith('/') ? s.source : findPciBlockDevice(s.source, opts);
  });
  const n = gpt(s) ? partitionNumber(s) : undefined;
  if (n !== undefined) {
    dev = partitionPath(dev, n);
    // The kernel scans the partition table on hot-plug; devtmpfs may lag (Kata polls 1 s).
    for (let waited = 0; !existsSync(dev) && waited < 1000; waited += 50) {
      if (ctx.signal?.aborted) throw abortError(ctx.signal);
      await sleep(50);
    }
  }
  assertBlockDevice(dev);
  return dev;
}

/** Every layer's disk, all waited for at once: the upper layer's first, then the lowers' in priority order. */
function layerDevices(storage: Storage, ctx: DeviceContext): Promise<string[]> {
  const { upper, lowers } = layout(storage, ctx.allowedRoots, ctx.containerId);
  return Promise.all((upper ? [upper, ...lowers] : lowers).map((s) => layerDevice(s, ctx)));
}

async function makeDirs(mkdirs: readonly Mkdir[], base: Mkdir['base'], mount: string): Promise<void> {
  for (const m of mkdirs) {
    if (m.base !== base) continue;
    // Inside the layer's own filesystem: no symlink on the way may lead out of it.
    const r = await native.makeBeneath(mount, m.rel, 0o755, false);
    if (!Array.isArray(r)) throw r;
  }
}

const baseDir = (ctx: { allowedRoots: readonly string[]; containerId?: string | undefined }): string =>
  join(ctx.allowedRoots[0]!, ctx.containerId ?? 'sandbox', 'multi-layer');

const lowerDir = (base: string, i: number): string => join(base, `lower-${i}`);

/** The overlay's data words: upper/upper, the lowers in priority order, upper/work. */
function overlayOptions(base: string, lowers: number): string[] {
  const upperMount = join(base, 'upper');
  return [
    `upperdir=${posix.join(upperMount, 'upper')}`,
    `lowerdir=${Array.from({ length: lowers }, (_, i) => lowerDir(base, i)).join(':')}`,
    `workdir=${posix.join(upperMount, 'work')}`,
  ];
}

export const erofsMultiLayerHandler: StorageHandler = {
  validate(storage, ctx): void {
    const { lowers } = layout(storage, ctx.allowedRoots, ctx.containerId);
    // Before any disk is waited for or mounted: the parser's own limit (one page, the layers
    // counted relative to their directory), ERR_MOUNT_OPTIONS_TOO_LONG with the data.
    parseMountOptions(overlayOptions(baseDir(ctx), lowers.length));
  },
  devices: layerDevices,
  async create(storage: Storage, ctx: StorageContext): Promise<string> {
    const { upper, lowers, mkdirs } = layout(storage, ctx.allowedRoots, ctx.containerId);
    const base = baseDir(ctx);
    const upperMount = join(base, 'upper');
    await ctx.makeDirectory(upperMount);
    // The Sandbox started the waits with the request; a caller of create() alone waits here.
    const devices = await (ctx.devices ?? layerDevices(storage, ctx));
    if (upper) {
      // Whole option elements, as Kata filters them: a marker's value may hold a comma.
      const options = (upper.options ?? []).filter((o) => !o.startsWith('X-kata.'));
      await ctx.mount(devices[0]!, upperMount, 'ext4', options);
    }
    await makeDirs(mkdirs, 'upper', upperMount);
    const lowerMounts: string[] = [];
    for (let i = 0; i < lowers.length; i++) {
      const dir = lowerDir(base, i);
      await ctx.makeDirectory(dir);
      await ctx.mount(devices[i + (upper ? 1 : 0)]!, dir, 'erofs', ['ro']);
      lowerMounts.push(dir);
    }
    await makeDirs(mkdirs, 'lower', lowerMounts[0]!);
    for (const d of ['upper', 'work']) {
      const r = await native.makeBeneath(upperMount, d, 0o755, false);
      if (!Array.isArray(r)) throw r;
    }
    await ctx.makeMountPoint();
    await ctx.mount('overlay', storage.mountPoint, 'overlay', overlayOptions(base, lowerMounts.length));
    return storage.mountPoint;
  },
};
