// `kata-storage plan <config.json>`: the planner from the command line. The command's whole logic
// is here; lib/cli.ts only parses the arguments with PLAN_OPTIONS and prints what plan() returns.
import { basename, dirname, resolve } from 'node:path';
import { booleanOption, choiceOption, columns, readJsonFile, stringOption, type OptionValues } from '../cli-common';
import type { Storage } from '../storage';
import { planContainer } from './container';
import { planError } from './errors';
import type { HostAction } from './host-actions';
import { planSandbox } from './sandbox';
import { BLOCK_DEVICE_DRIVERS, resolveSettings, SHARED_FS_VALUES, type RuntimeSettings } from './settings';
import type { OciMount } from './spec';

/** A container id as planContainer takes it. */
const CONTAINER_ID = /^[\w][\w.-]*$/;

const QUANTITY_FORMS =
  'must be a Kubernetes quantity of bytes (67108864, 64Mi, 64M, 0.5Gi, 5e8; suffixes Ki Mi Gi Ti Pi Ei, k M G T P E)';

/** util.parseArgs options of the plan command, with what `kata-storage plan --help` shows. */
export const PLAN_OPTIONS = {
  'shared-fs': choiceOption(SHARED_FS_VALUES, "the sandbox's shared filesystem (Kata's shared_fs; default virtio-fs)"),
  'block-device-driver': choiceOption(
    BLOCK_DEVICE_DRIVERS,
    `how block volumes are attached: ${BLOCK_DEVICE_DRIVERS.join(', ')} (Kata's block_device_driver; default virtio-scsi)`,
    'DRIVER',
  ),
  'shm-size': stringOption(
    'SIZE',
    "the size of the sandbox's /dev/shm, a Kubernetes quantity: 67108864, 64Mi, 64M (10^6), 1Gi, 5e8 (0: each container gets its own)",
    (v) => (quantityBytes(v) === undefined ? QUANTITY_FORMS : undefined),
  ),
  settings: stringOption('FILE', 'a JSON RuntimeSettings (paths, attached block devices, ...); the flags override it'),
  container: stringOption('ID', "the container's id (default: the bundle directory's name)", (v) =>
    CONTAINER_ID.test(v) ? undefined : 'must be a name of letters, digits, "_", "." and "-"',
  ),
  // The settings' own check of sandboxId, so the flag and the file take the same ids.
  sandbox: stringOption('ID', "the sandbox's id", (v) => {
    try {
      resolveSettings({ sandboxId: v });
      return undefined;
    } catch {
      return 'must be a non-empty name without "/" or NUL (not "." or "..")';
    }
  }),
  json: booleanOption('print the plan as JSON instead of tables'),
};

const BINARY_SI: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL_SI: Record<string, number> = { m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/**
 * Bytes from a Kubernetes quantity (apimachinery resource.Quantity's serialization: `64Mi`, `64M`,
 * `0.5Gi`, `5e8`, `128974848000m`), rounded up to a whole byte as Quantity.Value() rounds; undefined
 * when the text is not a quantity, is negative, or is beyond Number.MAX_SAFE_INTEGER. Computed on
 * integers (BigInt), so `1.1Gi` is exact.
 */
export function quantityBytes(text: string): number | undefined {
  const m = /^\+?(\d*)(?:\.(\d*))?(?:(Ki|Mi|Gi|Ti|Pi|Ei)|[eE]([+-]?\d{1,3})|(m|k|M|G|T|P|E)?)$/.exec(text);
  if (m === null || (m[1] === '' && (m[2] ?? '') === '')) return undefined;
  const [, whole, fraction = '', binary, exponent, decimal = ''] = m;
  let num = BigInt(`${whole}${fraction}` || '0');
  let den = 10n ** BigInt(fraction.length);
  if (binary !== undefined) num *= 2n ** BigInt(BINARY_SI[binary]!);
  const e = exponent !== undefined ? Number(exponent) : DECIMAL_SI[decimal]!;
  if (e >= 0) num *= 10n ** BigInt(e);
  else den *= 10n ** BigInt(-e);
  const bytes = (num + den - 1n) / den;
  return bytes <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(bytes) : undefined;
}

export interface PlanArgs {
  values: OptionValues<typeof PLAN_OPTIONS>;
  positionals: string[];
}

/** The spec and the settings files: not JSON is their own code, as a wrong value in them is. */
const readSpec = (file: string): unknown =>
  readJsonFile(file, (message) => planError('ERR_INVALID_SPEC', 'config.json', file, message));
const readSettings = (file: string): unknown =>
  readJsonFile(file, (message) => planError('ERR_INVALID_RUNTIME_SETTINGS', 'settings', file, message));

const table = (header: string[], rows: string[][]): string[] => columns([header, ...rows], { indent: '  ' });

function storageRows(storages: Storage[]): string[] {
  if (storages.length === 0) return ['  (none)'];
  return table(
    ['DRIVER', 'SOURCE', 'FSTYPE', 'MOUNT POINT', 'OPTIONS'],
    storages.map((s) => [
      s.driver,
      s.source,
      s.fstype,
      s.mountPoint,
      [...(s.options ?? []), ...(s.driverOptions ?? []).map((o) => `driver:${o}`)].join(','),
    ]),
  );
}

function mountRows(mounts: OciMount[]): string[] {
  return table(
    ['DESTINATION', 'TYPE', 'SOURCE', 'OPTIONS'],
    mounts.map((m) => [m.destination, m.type ?? '', m.source ?? '', (m.options ?? []).join(',')]),
  );
}

function actionRows(actions: HostAction[]): string[] {
  if (actions.length === 0) return ['  (none)'];
  return table(
    ['ACTION', 'FOR', 'SOURCE', 'TARGET'],
    actions.map((a) => {
      switch (a.action) {
        case 'share':
          return [a.readonly ? 'share (ro)' : 'share', a.for, a.source, `${a.hostPath} -> guest ${a.guestPath}`];
        case 'copy':
          return ['copy', a.for, a.source, `guest ${a.guestPath}`];
        case 'attach-block-device':
          return ['attach-block-device', a.for, a.source, `${a.driver} ${a.address}`];
      }
    }),
  );
}

/**
 * Runs the plan command on parsed arguments and returns what to print. The bundle is the spec's
 * directory (runc's relative `root.path` resolves there); the container id defaults to the
 * bundle's name. --settings names a JSON RuntimeSettings; the flags override it.
 */
export function plan(args: PlanArgs): string {
  const file = args.positionals[0];
  if (file === undefined)
    throw planError('ERR_INVALID_SPEC', 'config.json', undefined, 'is required: kata-storage plan <config.json>');
  const spec = readSpec(file);
  const settings = (args.values.settings !== undefined ? readSettings(args.values.settings) : {}) as RuntimeSettings;
  const bundle = dirname(resolve(file));
  const merged: Record<string, unknown> = { bundle, ...settings };
  if (args.values['shared-fs'] !== undefined) merged.sharedFs = args.values['shared-fs'];
  if (args.values['block-device-driver'] !== undefined) merged.blockDeviceDriver = args.values['block-device-driver'];
  // lib/cli.ts checked the flags; a value that is not one (a direct caller's) reaches the settings'
  // own check and is refused there.
  if (args.values['shm-size'] !== undefined)
    merged.shmSize = quantityBytes(args.values['shm-size']) ?? args.values['shm-size'];
  if (args.values.sandbox !== undefined) merged.sandboxId = args.values.sandbox;
  const fromBundle = basename(bundle);
  const containerId = args.values.container ?? (CONTAINER_ID.test(fromBundle) ? fromBundle : 'container');
  const sandbox = planSandbox(merged as RuntimeSettings);
  const container = planContainer(containerId, spec, merged as RuntimeSettings);
  if (args.values.json === true) return JSON.stringify({ containerId, sandbox, container }, null, 2);
  return [
    `sandbox storages (CreateSandbox)`,
    ...storageRows(sandbox.storages),
    `container ${containerId} storages (CreateContainer)`,
    ...storageRows(container.storages),
    `container ${containerId} mounts (root ${container.spec.root?.path ?? ''})`,
    ...mountRows(container.spec.mounts ?? []),
    `host actions`,
    ...actionRows(container.hostActions),
    ...(container.warnings.length === 0
      ? []
      : ['warnings', ...container.warnings.map((w) => `  ${w.code}: ${w.message}`)]),
  ].join('\n');
}
