// What the runtime planner makes of a mount's source (Kata's isSystemMount and the Kubernetes
// volume kinds), against the Kata runtime's own test cases (virtcontainers mount_test.go): their inputs and expected outputs are the facts these tables restate.
import t from 'tap';
import { isSystemMount, kubernetesVolume } from '../../lib/runtime/classify';
import { cleanPath } from '../../lib/runtime/paths';
import { POD } from '../helpers/plan';

t.test('isSystemMount, Kubernetes volume paths', async (t) => {
  // TestIsSystemMount
  const rows: [string, boolean][] = [
    ['/sys', true],
    ['/sys/', true],
    ['/sys//', true],
    ['/sys/fs', true],
    ['/sys/fs/', true],
    ['/sys/fs/cgroup', true],
    ['/sysfoo', false],
    ['/home', false],
    ['/dev/block/', false],
    ['/mnt/dev/foo', false],
    ['/../sys', true],
    ['/../sys/', true],
    ['/../sys/fs/cgroup', true],
    ['/../sysfoo', false],
    ['/proc/self', true],
  ];
  for (const [p, expected] of rows) t.equal(isSystemMount(p), expected, p);
  t.equal(cleanPath('/a//b/'), '/a/b');
  t.equal(cleanPath('/'), '/');
  // TestIsEmtpyDir / TestIsConfigMap / TestIsSecret: the kind is the second-to-last element.
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~empty-dir/foobar`), 'empty-dir');
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~empty-dir/foobar/bazzzzz`), undefined);
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~configmap/config`), 'configmap');
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~secret`), undefined);
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~secret/sweet-token`), 'secret');
  t.equal(kubernetesVolume(`${POD}/kubernetes.io~secret/sweet-token-dir/whoops`), undefined);
});
