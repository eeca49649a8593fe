// Child processes for the deployment checks and benchmarks: started with their output in a log
// file, each with a hard lifetime, and stopped by their own pid on exit, failure or signal.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { waitFor as waitForProbe } from '../../src/bench/load.ts';

export interface Proc {
  name: string;
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null when killed). */
  stop(graceMs?: number): Promise<number | null>;
}

const running = new Set<Proc>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const p of running) {
      try {
        p.child.kill('SIGKILL');
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

/**
 * Starts `cmd args` with stdout and stderr in `log`. `lifetimeS` bounds its life: it runs under
 * coreutils `timeout`, which kills it even if this process dies without cleaning up.
 */
export function start(name: string, cmd: string, args: string[], opts: { log: string; lifetimeS: number; env?: NodeJS.ProcessEnv; cwd?: string; uid?: number; gid?: number }): Proc {
  hookExit();
  fs.mkdirSync(path.dirname(opts.log), { recursive: true });
  const fd = fs.openSync(opts.log, 'a');
  const child = spawn('timeout', ['--kill-after=5', String(opts.lifetimeS), cmd, ...args], {
    stdio: ['ignore', fd, fd],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    uid: opts.uid,
    gid: opts.gid,
  });
  fs.closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const proc: Proc = {
    name,
    child,
    log: opts.log,
    exited,
    stop: async (graceMs = 10000) => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const code = await exited;
        clearTimeout(t);
        running.delete(proc);
        return code;
      }
      running.delete(proc);
      return exited;
    },
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

export { freePort, httpOk, sleep } from '../../src/bench/load.ts';

/** Polls `probe` until it returns true; throws after `timeoutMs`, or as soon as `proc` exits (with its log's tail). */
export function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number, proc?: Proc): Promise<void> {
  return waitForProbe(what, probe, {
    timeoutMs,
    exited: () => (proc !== undefined && (proc.child.exitCode !== null || proc.child.signalCode !== null) ? `${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode})` : undefined),
    context: proc === undefined ? undefined : () => `log ${proc.log}:\n${tail(proc.log)}`,
  });
}

export function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}
