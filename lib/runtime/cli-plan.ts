// `kata-storage plan <config.json>`: the planner from the command line. The command's whole logic
// is here; lib/cli.ts only parses the arguments with PLAN_OPTIONS and prints what plan() returns.
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { booleanOption, columns, stringOption, type OptionValues } from '../cli-common';
import type { Storage } from '../storage';
import { planContainer } from './container';
import { planError } from './errors';
import type { HostAction } from './host-actions';
import { planSandbox } from './sandbox';
import type { RuntimeSettings } from './settings';
import type { OciMount } from './spec';

/** util.parseArgs options of the plan command, with what `kata-storage plan --help` shows. */
export const PLAN_OPTIONS = {
  'shared-fs': stringOption(
    'virtio-fs|virtio-9p|none',
    "the sandbox's shared filesystem (Kata's shared_fs; default virtio-fs)",
  ),
  'block-device-driver': stringOption(
    'DRIVER',
    "how block volumes are attached (Kata's block_device_driver; default virtio-scsi)",
  ),
  'shm-size': stringOption('BYTES', "the size of the sandbox's /dev/shm (0: each container gets its own)"),
  settings: stringOption('FILE', 'a JSON RuntimeSettings (paths, attached block devices, ...); the flags override it'),
  container: stringOption('ID', "the container's id (default: the bundle directory's name)"),
  sandbox: stringOption('ID', "the sandbox's id"),
  json: booleanOption('print the plan as JSON instead of tables'),
};

export interface PlanArgs {
  values: OptionValues<typeof PLAN_OPTIONS>;
  positionals: string[];
}

function readJson(file: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw planError('ERR_INVALID_SPEC', what, file, `cannot be read as JSON: ${(e as Error).message}`);
  }
}

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
  const spec = readJson(file, 'config.json');
  const settings = (
    args.values.settings !== undefined ? readJson(args.values.settings, 'settings') : {}
  ) as RuntimeSettings;
  const bundle = dirname(resolve(file));
  const merged: Record<string, unknown> = { bundle, ...settings };
  if (args.values['shared-fs'] !== undefined) merged.sharedFs = args.values['shared-fs'];
  if (args.values['block-device-driver'] !== undefined) merged.blockDeviceDriver = args.values['block-device-driver'];
  if (args.values['shm-size'] !== undefined)
    merged.shmSize = /^\d+$/.test(args.values['shm-size']) ? Number(args.values['shm-size']) : args.values['shm-size'];
  if (args.values.sandbox !== undefined) merged.sandboxId = args.values.sandbox;
  const fromBundle = basename(bundle);
  const containerId = args.values.container ?? (/^[\w][\w.-]*$/.test(fromBundle) ? fromBundle : 'container');
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
  ].join('\n');
}
