// The guest paths Kata's runtime uses by default, a kubelet pod's volumes directory, and the
// smallest OCI spec around some mounts: the terms the planner's tests (test/runtime/) restate
// Kata's own test cases in.
import type { OciMount, OciSpec } from '../../lib/runtime/index';

export const SHARED = '/run/kata-containers/shared/containers';
export const SANDBOX = '/run/kata-containers/sandbox';
export const EPHEMERAL = `${SANDBOX}/ephemeral`;
export const STORAGE = `${SANDBOX}/storage`;
export const POD = '/var/lib/kubelet/pods/5f0861a0-a987-4a3a-bb0f-1058ddb9678f/volumes';

export const spec = (...mounts: OciMount[]): OciSpec => ({
  ociVersion: '1.0.2',
  root: { path: '/bundle/rootfs' },
  mounts,
});
export const bindMount = (destination: string, source: string, options = ['rbind', 'rprivate', 'rw']): OciMount => ({
  destination,
  type: 'bind',
  source,
  options,
});
