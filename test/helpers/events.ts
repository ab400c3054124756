// Collecting what the package publishes on a diagnostics channel during one test.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';

/** Every message published on `name` until the test ends. */
export function listen<T>(t: { teardown(fn: () => void): void }, name: string): T[] {
  const seen: T[] = [];
  const fn = (m: unknown): void => void seen.push(m as T);
  subscribe(name, fn);
  t.teardown(() => unsubscribe(name, fn));
  return seen;
}
