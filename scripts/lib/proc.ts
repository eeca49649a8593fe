// Child processes for the deployment checks and benchmarks: started with their output in a log
// file, each with a hard lifetime, and stopped by their own pid on exit, failure or signal.
import { type ChildProcess, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { waitFor as waitForProbe } from '../../src/bench/load.ts';
import { spawnChild, tail } from '../../src/bench/child-process.ts';

export interface Proc {
  name: string;
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null when killed). */
  stop(graceMs?: number): Promise<number | null>;
}

/** Children to kill if this process exits first. */
const running = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const child of running) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

/** Registers a started child to be killed if this process exits or is interrupted first. */
export function track(child: ChildProcess, exited: Promise<unknown>): void {
  hookExit();
  running.add(child);
  void exited.then(() => running.delete(child));
}

/**
 * Starts `cmd args` with stdout and stderr in `log`. `lifetimeS` bounds its life: it runs under
 * coreutils `timeout`, which kills it even if this process dies without cleaning up.
 */
export function start(
  name: string,
  cmd: string,
  args: string[],
  opts: { log: string; lifetimeS: number; env?: NodeJS.ProcessEnv; cwd?: string; uid?: number; gid?: number },
): Proc {
  const { child, exited, stop } = spawnChild(cmd, args, opts);
  track(child, exited);
  return { name, child, log: opts.log, exited, stop };
}

export { freePort, httpOk, sleep } from '../../src/bench/load.ts';
export { tail } from '../../src/bench/child-process.ts';

/** Polls `probe` until it returns true; throws after `timeoutMs`, or as soon as `proc` exits (with its log's tail). */
export function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number, proc?: Proc): Promise<void> {
  return waitForProbe(what, probe, {
    timeoutMs,
    exited: () =>
      proc !== undefined && (proc.child.exitCode !== null || proc.child.signalCode !== null)
        ? `${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode})`
        : undefined,
    context: proc === undefined ? undefined : () => `log ${proc.log}:\n${tail(proc.log)}`,
  });
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}
