// The command line's commands: what each takes, what its help shows, and what it runs. The library,
// and with it the native addon, is loaded only when a command runs, so lib/cli.ts's help and
// --version work even where the addon cannot load.
import { rmdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  booleanOption,
  describe,
  notAbsolutePath,
  readJsonFile,
  stringOption,
  type Io,
  type OptionSpec,
} from './cli-common';
import { DRIVER_LOCAL_TYPE } from './drivers';
import type { Storage } from './storage';
// The planner is pure TypeScript (no addon), so its options and code load with the CLI.
import { PLAN_OPTIONS, plan, type PlanArgs } from './runtime/cli-plan';

export type Values = Record<string, string | boolean | undefined>;

export interface Command {
  /** Positional arguments as shown in usage, e.g. '<storages.json>'. */
  args: string;
  /** One line for the program's help. */
  summary: string;
  /** More for the command's own help. */
  details?: string;
  /** The command's input, as its help shows it (the file's format). */
  input?: string;
  /** One command line, as its help shows it. */
  example: string;
  /** Smallest and largest number of positionals (Infinity: any). */
  positionals: [min: number, max: number];
  /**
   * Why the positionals cannot be what the command takes (bad usage, exit 2); undefined if they
   * can. Anything else it throws (the addon not loading) fails the command (exit 1).
   */
  checkArgs?(positionals: readonly string[]): string | undefined;
  options: Record<string, OptionSpec>;
  run(positionals: string[], values: Values, io: Io): Promise<number>;
}

const sandboxOptions = {
  root: stringOption(
    'DIR',
    'the allowed root mount points must lie beneath (default /run/kata-containers)',
    notAbsolutePath,
  ),
  container: stringOption('ID', 'the container the storages belong to'),
  sysfs: stringOption('DIR', 'where sysfs is mounted (default /sys)', notAbsolutePath),
  dev: stringOption('DIR', 'where device nodes appear (default /dev)', notAbsolutePath),
};

const DEFAULT_ROOT = '/run/kata-containers';

/** The storages file's format, as apply's and release's help show it. */
const STORAGES_INPUT =
  'A JSON array of Kata Storage messages, or { "storages": [...] } (a CreateContainerRequest), in ' +
  "our form or with Kata's protobuf field names:\n" +
  '  [{ "driver": "ephemeral", "source": "tmpfs", "fstype": "tmpfs",\n' +
  '     "options": ["size=64m"],\n' +
  '     "mount_point": "/run/kata-containers/sandbox/shm" }]';

// Lazy loaders: each pulls in the library (and the addon) only when a command runs.
/* eslint-disable @typescript-eslint/no-require-imports */
const lib = (): typeof import('./index') => require('./index') as typeof import('./index');
const demo = (): typeof import('./demo') => require('./demo') as typeof import('./demo');
const storageModule = (): typeof import('./storage') => require('./storage') as typeof import('./storage');
/* eslint-enable @typescript-eslint/no-require-imports */

/**
 * The storages of a file as apply and release take it. Not JSON, or not a list of storages, is
 * ERR_INVALID_STORAGE (field `storages`), the code a wrong storage in it gets; a file that cannot
 * be read is Node's ENOENT/EACCES/EISDIR.
 */
function readStorages(file: string): unknown[] {
  const { StorageError } = lib();
  const invalid = (message: string): Error =>
    new StorageError('ERR_INVALID_STORAGE', message, { value: file, field: 'storages' });
  const parsed = readJsonFile(file, invalid);
  const storages = Array.isArray(parsed) ? parsed : (parsed as { storages?: unknown } | null)?.storages;
  if (!Array.isArray(storages)) throw invalid(`${file}: expected an array of storages or { "storages": [...] }`);
  return storages;
}

/**
 * Each storage's mount point, checked as the Sandbox checks it (ERR_INVALID_STORAGE: outside the
 * root, not normalized, through a symlink), so apply and release refuse the same file alike.
 */
function placedStorages(file: string, root: string): Storage[] {
  const { normalizeStorage } = lib();
  const { placeMountPoint } = storageModule();
  return readStorages(file).map((x) => {
    const s = normalizeStorage(x);
    placeMountPoint(s.mountPoint, [root]);
    return s;
  });
}

const ms = (t0: number): string => `${(performance.now() - t0).toFixed(2)} ms`;

export const commands: Record<string, Command> = {
  demo: {
    args: '',
    summary: 'a walk-through: a sandbox, two containers, a shared emptyDir and disk (root)',
    details:
      "A sandbox, two containers sharing an emptyDir and a loop-device disk: each step's mounts, " +
      'reference counts and timings, and nothing left behind (npm run demo runs it in a private mount namespace).',
    example: 'unshare -m --propagation private kata-storage demo',
    positionals: [0, 0],
    options: {},
    async run(_p, _v, io) {
      await demo().runDemo((l) => io.out(l));
      return 0;
    },
  },
  apply: {
    args: '<storages.json>',
    summary: 'add the storages of a JSON file to a sandbox, show them, release them (root)',
    details:
      'Adds the storages to a new sandbox, shows the table, then releases them unless --keep. ' +
      'A mount point that is already a mount point (an earlier --keep not yet released) is refused ' +
      'with ERR_ALREADY_MOUNTED before anything is mounted: release it first.',
    input: STORAGES_INPUT,
    example: 'kata-storage apply storages.json --root /run/kata-containers --container app --keep',
    positionals: [1, 1],
    options: {
      ...sandboxOptions,
      keep: booleanOption('leave the storages in place (undo with kata-storage release)'),
    },
    async run([file], v, io) {
      const root = (v.root as string | undefined) ?? DEFAULT_ROOT;
      const storages = placedStorages(file!, root);
      const { Sandbox, StorageError, isMountPoint } = lib();
      // A new Sandbox knows nothing of what an earlier `apply --keep` left: without this it would
      // mount again on top, and release would then meet EBUSY from the lower mount. Refused, not
      // adopted: a mount found there may be anyone's, and taking it as ours would let release
      // unmount what this file did not mount.
      for (const s of storages) {
        if (isMountPoint(s.mountPoint)) {
          throw new StorageError(
            'ERR_ALREADY_MOUNTED',
            `${s.mountPoint} is already a mount point (left by an earlier apply --keep?): ` +
              `undo it with kata-storage release ${file} --root ${root}, or unmount it`,
            { value: s.mountPoint },
          );
        }
      }
      const sb = new Sandbox({
        allowedRoots: [root],
        sysfsRoot: (v.sysfs as string | undefined) ?? '/sys',
        devRoot: (v.dev as string | undefined) ?? '/dev',
      });
      const containerId = v.container as string | undefined;
      const t0 = performance.now();
      const held = await sb.addStorages(storages, containerId === undefined ? {} : { containerId });
      io.out(`added ${held.length} storage(s) in ${ms(t0)}`);
      for (const line of demo().storageTable(sb, root)) io.out(`  ${line}`);
      if (v.keep === true) {
        io.out(`kept; undo with: kata-storage release ${file} --root ${root}`);
        return 0;
      }
      const t1 = performance.now();
      await sb.destroy();
      io.out(`released in ${ms(t1)}`);
      return 0;
    },
  },
  release: {
    args: '<storages.json>',
    summary: 'undo `apply --keep` of the same JSON file (root)',
    details:
      "Unmounts each storage's mount point (last first) and removes the directories left empty, " +
      'up to the root. Directories with content stay. Mount points outside --root are refused ' +
      'as apply refuses them (ERR_INVALID_STORAGE), before anything is unmounted.',
    input: STORAGES_INPUT,
    example: 'kata-storage release storages.json --root /run/kata-containers',
    positionals: [1, 1],
    options: { root: sandboxOptions.root },
    async run([file], v, io) {
      const { isMountPoint, umount } = lib();
      const root = (v.root as string | undefined) ?? DEFAULT_ROOT;
      const storages = placedStorages(file!, root);
      let failed = 0;
      for (const s of [...storages].reverse()) {
        try {
          if (isMountPoint(s.mountPoint)) {
            await umount(s.mountPoint);
            io.out(`unmounted ${s.mountPoint}`);
          } else if (s.driver !== DRIVER_LOCAL_TYPE) {
            io.out(`not mounted: ${s.mountPoint}`);
          }
          for (let d = s.mountPoint; d !== root && d.startsWith(`${root}/`); d = dirname(d)) {
            const r = removeEmptyDir(d);
            if (r === 'removed') io.out(`removed ${d}`);
            if (r === 'not empty' && d === s.mountPoint) io.out(`kept ${d} (not empty)`);
            if (r !== 'removed') break;
          }
        } catch (e) {
          failed++;
          io.err(`kata-storage release: ${describe(e)}`);
        }
      }
      return failed === 0 ? 0 : 1;
    },
  },
  'parse-options': {
    args: '<option>...',
    summary: 'show how mount option words are parsed (flags, propagation, data)',
    input: 'Mount option words as Storage.options carries them (one word may hold several, comma-separated).',
    example: 'kata-storage parse-options rbind,rshared ro size=1m',
    positionals: [1, Infinity],
    options: {},
    async run(words, _v, io) {
      const { parseMountOptions, MountFlags } = lib();
      const names = (bits: number): string => {
        const set = Object.entries(MountFlags)
          .filter(([, f]) => f !== 0 && (bits & f) === f)
          .map(([k]) => k);
        return set.length > 0 ? set.join('|') : '0';
      };
      const p = parseMountOptions(words);
      io.out(JSON.stringify({ ...p, flagNames: names(p.flags), propagationNames: names(p.propagation) }));
      return 0;
    },
  },
  'resolve-pci': {
    args: '<pci-path>',
    summary: 'the block device of the virtio-blk disk at a PCI path (e.g. 02/03), waiting for hot-plug',
    input:
      "A guest PCI path as Kata's runtime sends it in a blk storage's source: each hop a slot (00-1f) " +
      'with an optional .function, hex, from the root bus down through bridges: 02/03 is slot 3 behind ' +
      'the bridge in slot 2. Valid inside the guest the runtime hot-plugged the disk into.',
    example: 'kata-storage resolve-pci 02/03 --timeout 5000',
    positionals: [1, 1],
    checkArgs([pciPath]) {
      try {
        lib().parsePciPathFull(pciPath!);
        return undefined;
      } catch (e) {
        if ((e as { code?: unknown }).code === 'ERR_INVALID_PCI_PATH') return describe(e);
        throw e;
      }
    },
    options: {
      sysfs: sandboxOptions.sysfs,
      dev: sandboxOptions.dev,
      timeout: stringOption('MS', 'how long to wait for the device (default 3000)', (v) =>
        /^\d{1,10}$/.test(v) ? undefined : 'must be a number of milliseconds',
      ),
    },
    async run([pciPath], v, io) {
      const timeout = v.timeout as string | undefined;
      const dev = await lib().findPciBlockDevice(pciPath!, {
        sysfsRoot: (v.sysfs as string | undefined) ?? '/sys',
        devRoot: (v.dev as string | undefined) ?? '/dev',
        timeoutMs: timeout === undefined ? 3000 : Number(timeout),
      });
      io.out(dev);
      return 0;
    },
  },
  plan: {
    args: '<config.json>',
    summary: "plan a container from an OCI spec as Kata's runtime would (no addon, no mounts)",
    details:
      "Plans a container from its OCI spec (config.json) as Kata's runtime would: the sandbox's and " +
      "the container's storages, the rewritten mounts, the host actions and any warnings " +
      '(kata-storage/runtime).',
    input:
      'An OCI runtime spec (config.json: root, mounts[] of { destination, type, source, options }), ' +
      'as containerd or CRI-O writes it into the bundle. --settings takes a JSON RuntimeSettings, e.g.\n' +
      '  { "sandboxId": "pod", "volumes": { "<host path>": { "fstype": "tmpfs" } } }',
    example: 'kata-storage plan bundle/config.json --settings settings.json --shm-size 64Mi',
    positionals: [1, 1],
    options: PLAN_OPTIONS,
    async run(positionals, values, io) {
      io.out(plan({ positionals, values: values as PlanArgs['values'] }));
      return 0;
    },
  },
};

/** rmdir, never recursive: a directory with content stays. */
function removeEmptyDir(dir: string): 'removed' | 'not empty' | 'gone' {
  try {
    rmdirSync(dir);
    return 'removed';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return 'not empty';
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'gone';
    throw e;
  }
}
