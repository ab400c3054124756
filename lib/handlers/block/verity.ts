// dm-verity block volumes: the `verity_info=<json>` driver option carries Kata's DmVerityInfo
// (kata-types mount.rs); the native core builds the verity table and creates the device through
// device-mapper ioctls (native/core/dm.cc), as Kata's kata-types dmverity.rs does.
import { basename, join } from 'node:path';
import { StorageError } from '../../errors';
import { native } from '../../native';

export const VERITY_INFO = 'verity_info=';

/** Kata's DmVerityInfo, field names as on the wire. */
export interface DmVerityInfo {
  /** Hash algorithm: 'sha256' or 'sha1'. */
  hashtype: string;
  /** Root hash, hex. */
  hash: string;
  /** Data blocks. */
  blocknum: number;
  /** Data block size, bytes. */
  blocksize: number;
  /** Hash block size, bytes. */
  hashsize: number;
  /** Byte offset of the hash area (veritysetup's --hash-offset) on the same device. */
  offset: number;
  /** Hex salt; absent or '-' for none. */
  salt?: string;
  /** Verity format 0 or 1 (default 1). */
  hash_type?: number;
  /** The hash tree starts at `offset` without a veritysetup superblock (default false). */
  no_superblock?: boolean;
}

function invalid(option: string, field: string, why: string): StorageError {
  return new StorageError('ERR_INVALID_STORAGE', `driver option verity_info: ${field} ${why}`, {
    value: option,
    field: 'driverOptions',
    verityField: field,
  });
}

/** Parses and checks a `verity_info=<json>` word (every check of the table builder included). */
export function parseVerityInfo(word: string): DmVerityInfo {
  let raw: unknown;
  try {
    raw = JSON.parse(word.slice(VERITY_INFO.length));
  } catch (err) {
    throw invalid(word, 'JSON', `does not parse (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(word, 'JSON', 'must be an object');
  const o = raw as Record<string, unknown>;
  const str = (k: string, optional = false): string | undefined => {
    const v = Object.hasOwn(o, k) ? o[k] : undefined;
    if (v === undefined || v === null) {
      if (optional) return undefined;
      throw invalid(word, k, 'is missing');
    }
    if (typeof v !== 'string') throw invalid(word, k, 'must be a string');
    return v;
  };
  const num = (k: string, optional = false): number | undefined => {
    const v = Object.hasOwn(o, k) ? o[k] : undefined;
    if (v === undefined || v === null) {
      if (optional) return undefined;
      throw invalid(word, k, 'is missing');
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      throw invalid(word, k, 'must be a non-negative integer');
    return v;
  };
  const info: DmVerityInfo = {
    hashtype: str('hashtype')!,
    hash: str('hash')!,
    blocknum: num('blocknum')!,
    blocksize: num('blocksize')!,
    hashsize: num('hashsize')!,
    offset: num('offset')!,
  };
  const salt = str('salt', true);
  if (salt !== undefined) info.salt = salt;
  const hashType = num('hash_type', true);
  if (hashType !== undefined) info.hash_type = hashType;
  const ns = Object.hasOwn(o, 'no_superblock') ? o.no_superblock : undefined;
  if (ns !== undefined && ns !== null) {
    if (typeof ns !== 'boolean') throw invalid(word, 'no_superblock', 'must be a boolean');
    info.no_superblock = ns;
  }
  verityTable(info, '0:0', word);
  return info;
}

/**
 * The verity target for `info` over `dataDev` ('major:minor', data and hash on the same device):
 * `{ params, sectors }` as DM_TABLE_LOAD takes them. Throws ERR_INVALID_STORAGE naming the field.
 */
export function verityTable(info: DmVerityInfo, dataDev: string, option = ''): { params: string; sectors: number } {
  const r = native.verityTable(
    info.hashtype,
    info.hash,
    info.blocknum,
    info.blocksize,
    info.hashsize,
    info.offset,
    info.salt ?? '',
    info.hash_type ?? 1,
    info.no_superblock === true,
    dataDev,
  );
  if (r instanceof Error) {
    throw invalid(
      option || JSON.stringify(info),
      String((r as StorageError).value),
      'is out of range or malformed (see Kata DmVerityInfo.IsValid)',
    );
  }
  return r;
}

/** Kata's build_dmverity_device_name: kata-verity-<disk>-off<offset>-<first 32 hash digits>. */
export function verityDeviceName(device: string, info: DmVerityInfo): string {
  return `kata-verity-${basename(device)}-off${info.offset}-${info.hash.slice(0, 32).toLowerCase()}`.slice(0, 127);
}

export interface VerityDevice {
  control: string;
  name: string;
  /** The node we made: <devRoot>/mapper/<name>. */
  node: string;
}

/** Creates the read-only verity device over `device` (major:minor); resolves with its node. */
export async function createVerityDevice(
  devRoot: string,
  device: string,
  dev: { major: number; minor: number },
  info: DmVerityInfo,
): Promise<VerityDevice> {
  const { params, sectors } = verityTable(info, `${dev.major}:${dev.minor}`);
  const name = verityDeviceName(device, info);
  const v = { control: join(devRoot, 'mapper', 'control'), name, node: join(devRoot, 'mapper', name) };
  const r = await native.dmVerityCreate(v.control, v.name, sectors, params, v.node);
  if (r instanceof Error) throw r;
  return v;
}

/** DM_DEV_REMOVE with DM_DEFERRED_REMOVE (gone once its mount is), then the node. */
export async function removeVerityDevice(v: VerityDevice): Promise<void> {
  const e = await native.dmRemove(v.control, v.name, v.node, true);
  if (e) throw e;
}
