// Finding the block device the kernel created for a disk the runtime announced: PCI paths, CCW bus
// ids, SCSI addresses and predicted /dev names. Parsing, the sysfs walk and the uevent wait are
// native; this file checks arguments and shapes results and errors.
import { statSync } from 'node:fs';
import { constants } from 'node:os';
import {
  StorageError,
  abortError,
  invalidArgType,
  invalidArgValue,
  notBlockDeviceMessage,
  systemError,
  type TargetFailure,
} from './errors';
import { tracePromise } from './events';
import { native, type DeviceWaitResult, type UeventMonitorState } from './native';

export interface PciSlot {
  /** Device (slot) number on its bus, 0x00-0x1f. */
  slot: number;
  /** Function number, 0-7. */
  fn: number;
}

export interface ParsedPciPath {
  /**
   * The pxb root complex named by a NUMA-form path ('20' for '20/00/02'), as two lowercase hex
   * digits; absent for the ordinary form, which starts on root complex 00.
   */
  rootComplex?: string;
  /** Slot/function of each device from the root bus down, the last one being the disk. */
  slots: PciSlot[];
}

export interface WaitOptions {
  /** Where sysfs is mounted (fixture trees in tests). Default '/sys'. */
  sysfsRoot?: string;
  /** Where device nodes appear. Default '/dev'. */
  devRoot?: string;
  /** How long to wait for a hot-plugged device. Default 3000 ms. */
  timeoutMs?: number;
  /** Rejects with ABORT_ERR at once when it fires. */
  signal?: AbortSignal;
}

/** Bus numbers shared with native/core/device.h. */
const enum Bus {
  Pci = 0,
  Ccw = 1,
  Scsi = 2,
  Mmio = 3,
  Pmem = 4,
}

const DEFAULT_TIMEOUT_MS = 3000;

function checkString(value: unknown, name: string): string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
  return value;
}

function checkRoot(value: unknown, name: string, fallback: string): string {
  if (value === undefined) return fallback;
  const s = checkString(value, name);
  if (!s.startsWith('/') || s.includes('\0'))
    throw invalidArgValue(name, s, 'must be an absolute path without null bytes');
  // A trailing slash would make the paths we hand back non-normalized ('/dev//vda').
  return s.length > 1 ? s.replace(/\/+$/, '') : s;
}

function slotsFrom(flat: number[], from: number): PciSlot[] {
  const slots: PciSlot[] = [];
  for (let i = from; i + 1 < flat.length; i += 2) slots.push({ slot: flat[i]!, fn: flat[i + 1]! });
  return slots;
}

/**
 * Parses a PCI path: `SS` or `SS.F` hex elements joined by '/', slot 00-1f, function 0-7, each
 * element naming a device on the bus behind the one before ('02/03': the bridge at slot 2 of the
 * root bus, then the device at slot 3 behind it). Returns the slots from the root bus down.
 *
 * NUMA form: when the first element is 20-ff it names a pxb root complex rather than a slot
 * ('20/00/02': root complex 20, then slots 00 and 02); the result is then the slots after it, and
 * `parsePciPathFull` also reports the root complex. A root complex alone ('20') is not a path.
 */
export function parsePciPath(path: string): PciSlot[] {
  return parsePciPathFull(path).slots;
}

/** parsePciPath, also returning the pxb root complex of a NUMA-form path. */
export function parsePciPathFull(path: string): ParsedPciPath {
  const r = native.parsePciPath(checkString(path, 'path'));
  if (r instanceof Error) throw r;
  const parsed: ParsedPciPath = { slots: slotsFrom(r, 1) };
  if (r[0]! >= 0) parsed.rootComplex = r[0]!.toString(16).padStart(2, '0');
  return parsed;
}

function rootComplexArg(value: unknown): string {
  if (value === undefined) return '';
  return checkString(value, 'options.rootComplex');
}

/**
 * The sysfs directory of the device at `path`, e.g.
 * `/sys/devices/pci0000:00/0000:00:02.0/0000:01:03.0` for '02/03': each bridge's bus is read from
 * its `pci_bus/` entry (exactly one) or, when that is absent, from its child devices (exactly one
 * bus among them). The last device need not exist yet; every bridge must.
 */
export function pciPathToSysfs(path: string, opts: { sysfsRoot?: string; rootComplex?: string } = {}): string {
  const p = checkString(path, 'path');
  const sysfsRoot = checkRoot(opts.sysfsRoot, 'options.sysfsRoot', '/sys');
  const r = native.pciPathToSysfs(p, sysfsRoot, rootComplexArg(opts.rootComplex));
  if (typeof r === 'string') return r;
  throw r;
}

interface ResolvedWait {
  sysfsRoot: string;
  devRoot: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

function waitOptions(opts: WaitOptions | undefined): ResolvedWait {
  if (opts === undefined || opts === null) return { sysfsRoot: '/sys', devRoot: '/dev', timeoutMs: DEFAULT_TIMEOUT_MS };
  if (typeof opts !== 'object') throw invalidArgType('options', 'of type object', opts);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 0x7fffffff) {
    throw invalidArgValue('options.timeoutMs', timeoutMs, 'must be a non-negative integer number of milliseconds');
  }
  const signal = opts.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal))
    throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
  return {
    sysfsRoot: checkRoot(opts.sysfsRoot, 'options.sysfsRoot', '/sys'),
    devRoot: checkRoot(opts.devRoot, 'options.devRoot', '/dev'),
    timeoutMs,
    signal,
  };
}

export type { TargetFailure } from './errors';

function targetFailure(f: Error): TargetFailure {
  // The native record arrived as a StorageError (nativeError): its message is `${reason}: '${value}'`.
  const e = f as StorageError & { value?: unknown; errno?: number; syscall?: string };
  const path = String(e.value ?? '');
  const suffix = `: '${path}'`;
  const out: TargetFailure = { path, reason: e.message.endsWith(suffix) ? e.message.slice(0, -suffix.length) : e.code };
  if (e.errno !== undefined && e.errno !== 0) {
    out.errno = -Math.abs(e.errno);
    out.code = systemError(e.errno, e.syscall ?? '').code;
    out.syscall = e.syscall;
  }
  return out;
}

function settle(r: DeviceWaitResult): string {
  if ('via' in r) return r.path;
  if ('awaited' in r) {
    const err = systemError(r.errno, 'uevent', r.awaited) as ReturnType<typeof systemError> & {
      awaited: string;
      nearestEvents: string[];
      details: TargetFailure[];
    };
    const seen = r.nearest.length > 0 ? r.nearest.join(', ') : 'none';
    err.message = `${err.code}: no device after ${r.timeoutMs} ms waiting for ${r.awaited}; nearest events seen: ${seen}`;
    err.awaited = r.awaited;
    err.nearestEvents = r.nearest;
    err.details = (r.failures ?? []).map(targetFailure);
    if (err.details.length > 0) {
      err.message += `; targets that failed on the way: ${err.details.map((d) => `${d.path}: ${d.reason}`).join('; ')}`;
    }
    throw err;
  }
  throw r;
}

function checkSysfsRoot(root: string): void {
  try {
    if (statSync(root).isDirectory()) return;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw systemError(
      constants.errno[err.code as keyof typeof constants.errno] ?? constants.errno.ENOENT,
      'stat',
      root,
    );
  }
  throw systemError(constants.errno.ENOTDIR, 'stat', root);
}

/**
 * The core of every finder: a synchronous look in sysfs first (an existing device costs one short
 * walk on this thread); only a device that is not there yet goes to a native thread that
 * subscribes to uevents, looks again, and waits.
 */
async function findBlockDevice(
  bus: Bus,
  spec: string,
  rootComplex: string,
  o: ResolvedWait,
  rescan: boolean,
): Promise<string> {
  const lookup: Lookup = { bus, spec, rootComplex, o, rescan };
  if (o.signal?.aborted) throw abortError(o.signal);
  const found = native.findBlockDevice(bus, spec, rootComplex, o.sysfsRoot, o.devRoot);
  if (typeof found === 'string') return found;
  if (found !== null) throw found;
  // Waiting under a sysfs that is not there could only time out: say so now.
  checkSysfsRoot(o.sysfsRoot);
  return tracePromise(
    'wait',
    () => ({ bus: BUS_NAMES[bus], source: spec, timeoutMs: o.timeoutMs }),
    () => waitBlockDevice(lookup),
  );
}

const BUS_NAMES = ['pci', 'ccw', 'scsi', 'mmio', 'pmem'] as const;

/** What a finder looks for: the bus, the address on it, the PCI root complex, how long, rescan. */
interface Lookup {
  bus: Bus;
  spec: string;
  rootComplex: string;
  o: ResolvedWait;
  rescan: boolean;
}

/** The device is not there yet: a native thread subscribes to uevents, looks again and waits. */
async function waitBlockDevice({ bus, spec, rootComplex, o, rescan }: Lookup): Promise<string> {
  const [id, pending] = native.waitBlockDevice(bus, spec, rootComplex, o.sysfsRoot, o.devRoot, o.timeoutMs, rescan);
  const signal = o.signal;
  if (!signal) return settle(await pending);
  return new Promise<string>((resolve, reject) => {
    const onAbort = (): void => {
      // Frees the native waiter now rather than at its deadline.
      native.cancelDeviceWait(id);
      reject(abortError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    void pending.then((r) => {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted) return;
      try {
        resolve(settle(r));
      } catch (err) {
        reject(err);
      }
    });
  });
}

// Argument errors reject rather than throw: callers of a Promise API handle one failure path.
function reject<T>(fn: () => T): T | Promise<never> {
  try {
    return fn();
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * The block device (`/dev/vda`) of the virtio-blk disk at PCI path `path`: the disk under
 * `<device>/virtio<N>/block/`, never a partition. Waits for its uevent when it is not there yet;
 * `rescan` first writes 1 to `<sysfsRoot>/bus/pci/rescan` (guests without ACPI hot-plug need it).
 */
export function findPciBlockDevice(
  path: string,
  opts?: WaitOptions & { rescan?: boolean; rootComplex?: string },
): Promise<string> {
  return reject(() => {
    const p = checkString(path, 'path');
    const o = waitOptions(opts);
    const rescan = opts?.rescan ?? false;
    if (typeof rescan !== 'boolean') throw invalidArgType('options.rescan', 'of type boolean', rescan);
    return findBlockDevice(Bus.Pci, p, rootComplexArg(opts?.rootComplex), o, rescan);
  });
}

/** Parses an s390x CCW bus id `0.<ssid 0-3>.<devno, 1-4 hex digits>`. */
export function parseCcwDevice(busId: string): { cssid: number; ssid: number; devno: number } {
  const r = native.parseCcwDevice(checkString(busId, 'busId'));
  if (r instanceof Error) throw r;
  return { cssid: r[0]!, ssid: r[1]!, devno: r[2]! };
}

/** The virtio-blk disk of CCW device `busId` (under /sys/devices/css0/<subchannel>/<busId>). */
export function findCcwBlockDevice(busId: string, opts?: WaitOptions): Promise<string> {
  return reject(() => findBlockDevice(Bus.Ccw, checkString(busId, 'busId'), '', waitOptions(opts), false));
}

/** Parses a SCSI address `target:lun` (decimal). */
export function parseScsiAddress(addr: string): { target: number; lun: number } {
  const r = native.parseScsiAddress(checkString(addr, 'addr'));
  if (r instanceof Error) throw r;
  return { target: r[0]!, lun: r[1]! };
}

/**
 * The disk at SCSI `target:lun` on channel 0 of any host. When it is not there yet, asks every
 * host to scan for it (`0 <target> <lun>` into `scsi_host/<host>/scan`), then waits.
 */
export function findScsiBlockDevice(addr: string, opts?: WaitOptions): Promise<string> {
  return reject(() => findBlockDevice(Bus.Scsi, checkString(addr, 'addr'), '', waitOptions(opts), false));
}

function nodeName(devPath: unknown, devRoot: string): string {
  const p = checkString(devPath, 'devPath');
  const prefix = devRoot === '/' ? '/' : `${devRoot}/`;
  const name = p.startsWith(prefix) ? p.slice(prefix.length) : '';
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw invalidArgValue('devPath', p, `must name a device node directly under ${devRoot}`);
  }
  return name;
}

/** Waits for the virtio-mmio disk `devPath` (`/dev/vdb`): the whole disk named so, not a partition. */
export function findMmioBlockDevice(devPath: string, opts?: WaitOptions): Promise<string> {
  return reject(() => {
    const o = waitOptions(opts);
    return findBlockDevice(Bus.Mmio, nodeName(devPath, o.devRoot), '', o, false);
  });
}

/** Waits for the NVDIMM disk `devPath` (`/dev/pmem0`), which must sit under /devices/LNXSYSTM. */
export function findPmemDevice(devPath: string, opts?: WaitOptions): Promise<string> {
  return reject(() => {
    const o = waitOptions(opts);
    return findBlockDevice(Bus.Pmem, nodeName(devPath, o.devRoot), '', o, false);
  });
}

/** The type and number of the device node at `path` (symlinks followed, as stat(2) does). */
export function deviceNumber(path: string): { type: 'block' | 'char'; major: number; minor: number } {
  const p = checkString(path, 'path');
  if (p.includes('\0')) throw invalidArgValue('path', p, 'must be a string without null bytes');
  const r = native.deviceNumber(p);
  if (r instanceof Error) throw r;
  if (r[0] === 0) return { type: 'block', major: r[1]!, minor: r[2]! };
  if (r[0] === 1) return { type: 'char', major: r[1]!, minor: r[2]! };
  throw new StorageError('ERR_NOT_DEVICE_NODE', `'${p}' is not a device node`, { value: p });
}

/** Refuses anything but a block device node (S_ISBLK: char devices, directories and files fail). */
export function assertBlockDevice(path: string): { major: number; minor: number } {
  const p = checkString(path, 'path');
  if (p.includes('\0')) throw invalidArgValue('path', p, 'must be a string without null bytes');
  const r = native.deviceNumber(p);
  if (r instanceof Error) throw r;
  if (r[0] !== 0) throw new StorageError('ERR_NOT_BLOCK_DEVICE', notBlockDeviceMessage(p), { value: p });
  return { major: r[1]!, minor: r[2]! };
}

/** State of the shared uevent listener (diagnostics and tests). */
export function ueventMonitorState(): UeventMonitorState {
  return native.ueventMonitorState();
}
