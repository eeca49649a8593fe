// A child process for the benchmarks and the scripts' checks: its output in a log file (or, without
// one, the tail of its stderr kept for error messages), optionally under coreutils `timeout`, and a
// stop that escalates from SIGTERM to SIGKILL.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ChildOptions {
  /** A file for stdout and stderr (appended to); without one stdout is dropped and stderr's tail kept. */
  log?: string;
  /** Runs it under coreutils `timeout`, which kills it even if this process dies without stopping it. */
  lifetimeS?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  uid?: number;
  gid?: number;
}

export interface Child {
  child: ChildProcess;
  /** Resolves with the exit code (null when a signal ended it). */
  exited: Promise<number | null>;
  /** Whether it has exited already. */
  done(): boolean;
  /** The end of what it wrote: its log file's, or its stderr's. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null when killed). */
  stop(graceMs?: number): Promise<number | null>;
}

/** Characters of stderr kept for error messages when there is no log file. */
const STDERR_TAIL_CHARS = 4000;

export function spawnChild(cmd: string, args: string[], opts: ChildOptions = {}): Child {
  const argv =
    opts.lifetimeS === undefined ? [cmd, ...args] : ['timeout', '--kill-after=5', String(opts.lifetimeS), cmd, ...args];
  const spawnOpts = { env: opts.env ?? process.env, cwd: opts.cwd, uid: opts.uid, gid: opts.gid };
  let stderrTail = '';
  let child: ChildProcess;
  const log = opts.log;
  if (log !== undefined) {
    fs.mkdirSync(path.dirname(log), { recursive: true });
    const fd = fs.openSync(log, 'a');
    child = spawn(argv[0], argv.slice(1), { ...spawnOpts, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
  } else {
    child = spawn(argv[0], argv.slice(1), { ...spawnOpts, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => {
      stderrTail = (stderrTail + d.toString()).slice(-STDERR_TAIL_CHARS);
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const done = () => child.exitCode !== null || child.signalCode !== null;
  const stop = async (graceMs = 10_000): Promise<number | null> => {
    if (done()) return exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };
  return { child, exited, done, output: () => (log === undefined ? stderrTail : tail(log)), stop };
}

/** The last `lines` lines of a log file. */
export function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
