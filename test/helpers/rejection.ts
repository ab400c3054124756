// What a promise rejected with, for tests that inspect the error's fields; a resolution is itself
// a failure ('expected a rejection').

/** The error fields the tests read; every one optional, as on a plain Error. */
export type Rejection = Error & {
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
  dest?: string;
  value?: unknown;
  rollbackErrors?: unknown;
  [key: string]: unknown;
};

export async function rejection<E = Rejection>(p: Promise<unknown>): Promise<E> {
  try {
    await p;
  } catch (e) {
    return e as E;
  }
  throw new Error('expected a rejection');
}
