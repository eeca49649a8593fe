// `taskmoe serve` in a child process, started one way for everything that needs a real server
// process: the benchmarks (`taskmoe bench server`, `bench faults`), the deployment checks and
// benchmarks in scripts/ (scripts/lib/taskmoe.ts) and the tests that signal a server. It listens on
// 127.0.0.1 (a free port unless given) and is returned once /readyz is 200.
import type { ChildProcess } from 'node:child_process';
import { type Child, type ChildOptions, spawnChild } from './child-process.ts';
import { freePort, httpOk, waitFor } from './load.ts';

export interface ServerProcessOptions extends ChildOptions {
  model: string;
  /** Further `taskmoe serve` flags. */
  args?: string[];
  /** Default: a free port. */
  port?: number;
  /** How to run the CLI: node's flags and the entry script. Default: this process's own, as `taskmoe bench` runs. */
  cli?: { execArgv: string[]; entry: string };
  /** Default 180 s: a loaded machine may take long to warm up. */
  readyTimeoutMs?: number;
  /** Names the process in messages (default "taskmoe serve"). */
  name?: string;
  /** Called as soon as the child exists (before it is ready), e.g. to kill it if this process is interrupted. */
  onSpawn?: (child: ChildProcess, exited: Promise<number | null>) => void;
}

export interface ServerProcess extends Child {
  name: string;
  port: number;
  /** http://127.0.0.1:PORT */
  url: string;
}

/** Starts `taskmoe serve --model MODEL --port PORT --host 127.0.0.1 ARGS...`; resolves once /readyz is 200, else kills it and throws. */
export async function startServerProcess(opts: ServerProcessOptions): Promise<ServerProcess> {
  const name = opts.name ?? 'taskmoe serve';
  const port = opts.port ?? (await freePort());
  const cli = opts.cli ?? { execArgv: process.execArgv, entry: process.argv[1] };
  const serveArgs = [
    'serve',
    '--model',
    opts.model,
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    ...(opts.args ?? []),
  ];
  const child = spawnChild(process.execPath, [...cli.execArgv, cli.entry, ...serveArgs], opts);
  opts.onSpawn?.(child.child, child.exited);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${name} /readyz`, () => httpOk(`${url}/readyz`), {
      timeoutMs: opts.readyTimeoutMs ?? 180_000,
      exited: () => (child.done() ? `${name} exited (${child.child.exitCode ?? child.child.signalCode})` : undefined),
      context: () => (opts.log === undefined ? child.output() : `log ${opts.log}:\n${child.output()}`),
    });
  } catch (err) {
    child.child.kill('SIGKILL');
    throw err;
  }
  return { ...child, name, port, url };
}
