// kata-storage in-process (lib/cli.ts's run() with its two streams collected): the same code as the
// process, without starting one, for the cases whose exit code and streams are all they check.
import { run } from '../../lib/cli';

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs the command line on `args`; stdout and stderr are the lines each stream got. */
export async function inProcess(...args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const status = await run(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { status, stdout: out.join('\n'), stderr: err.join('\n') };
}
