// Kata's handleShm: a container's /dev/shm is the sandbox's shm (an rbind of it) when the sandbox
// has one, else a tmpfs of its own of Kata's DefaultShmSize. An ephemeral /dev/shm (a memory
// emptyDir mounted there) is left to the ephemeral step.
import { sandboxShmPath, shmOptions } from './sandbox';
import { DEFAULT_SHM_SIZE, type ResolvedSettings } from './settings';
import type { WorkingMount } from './working';

export function planShm(mounts: WorkingMount[], s: ResolvedSettings): void {
  for (const m of mounts) {
    if (m.removed || m.destination !== '/dev/shm' || m.type === 'ephemeral') continue;
    if (s.shmSize > 0) {
      m.type = 'bind';
      m.source = sandboxShmPath(s);
      m.options = ['rbind'];
    } else {
      m.type = 'tmpfs';
      m.source = 'shm';
      m.options = shmOptions(DEFAULT_SHM_SIZE);
    }
  }
}
