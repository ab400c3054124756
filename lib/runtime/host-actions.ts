// What the host side must do (or has done) for a plan: Kata's runtime does these itself
// (FilesystemShare.ShareFile/ShareRootFilesystem bind mounts, agent CopyFile, device manager
// AttachDevice); the planner only names them, in the order Kata does them.

/** Bind `source` at `hostPath` under the sandbox's share dir; the guest sees it at `guestPath`. */
export interface ShareAction {
  action: 'share';
  source: string;
  hostPath: string;
  guestPath: string;
  /** Kata's two-step read-only bind (private ro bind, then bind into the share dir). */
  readonly: boolean;
  /** `mounts[3]` or `root.path`. */
  for: string;
}

/** shared_fs=none: copy the file or tree into the guest (agent CopyFile) at `guestPath`. */
export interface CopyAction {
  action: 'copy';
  source: string;
  guestPath: string;
  for: string;
}

/** Hot-plug `source` (a host block device or image file) so the guest sees it at `address`. */
export interface AttachBlockDeviceAction {
  action: 'attach-block-device';
  source: string;
  /** The agent's driver for it: blk, scsi, mmioblk, blk-ccw or nvdimm. */
  driver: string;
  /** PCI path, SCSI address, CCW devno, /dev/vdX or /dev/pmemN. */
  address: string;
  readonly: boolean;
  for: string;
}

export type HostAction = ShareAction | CopyAction | AttachBlockDeviceAction;

/** The undoing of one host action. */
export type UndoAction =
  | { action: 'unshare'; hostPath: string; for: string }
  | { action: 'remove-copy'; guestPath: string; for: string }
  | { action: 'detach-block-device'; source: string; for: string };

/**
 * What to undo when creating the container fails after the host actions ran: Kata's
 * rollbackFailingContainerCreation (unmountHostMounts, UnshareRootFilesystem) and
 * mountSharedDirMounts' detach of the devices it attached, newest first.
 */
export function rollbackHostActions(actions: readonly HostAction[]): UndoAction[] {
  const undo: UndoAction[] = [];
  for (let i = actions.length - 1; i >= 0; i--) {
    const a = actions[i]!;
    switch (a.action) {
      case 'share':
        undo.push({ action: 'unshare', hostPath: a.hostPath, for: a.for });
        break;
      case 'copy':
        undo.push({ action: 'remove-copy', guestPath: a.guestPath, for: a.for });
        break;
      case 'attach-block-device':
        undo.push({ action: 'detach-block-device', source: a.source, for: a.for });
        break;
    }
  }
  return undo;
}
