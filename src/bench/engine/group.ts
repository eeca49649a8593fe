// One group of the engine benchmark's variants in a child process of its own (a fresh wasm heap),
// driven request by request from the parent: the messages both sides exchange, and the parent's
// side (GroupClient). The child's side is group-child.ts.
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RpcClient } from '../../util/rpc.ts';
import type { Variant } from './costs.ts';
import type { StepProfile } from './measure.ts';

export interface GroupJob {
  config: string;
  quick: boolean;
  variants: Variant[];
}

export interface ModelInfo {
  variant: Variant;
  decoderParams: number;
  residentBytes: number;
  plainDecoder: boolean;
}

export type RequestBody =
  | { cmd: 'jit'; batch: number }
  | { cmd: 'prepare'; batch: number }
  | { cmd: 'run'; batch: number; variant: Variant }
  | { cmd: 'finish' };

export interface Prepared {
  encodeSeconds: number;
  profiles: Partial<Record<Variant, StepProfile>>;
  heapBytes: number;
}

export type ChildMessage =
  | { type: 'log'; line: string }
  | { type: 'ready'; models: ModelInfo[] }
  | { type: 'reply'; id: number; data: unknown }
  /** Without an id: the child failed as a whole (building its models, say). */
  | { type: 'error'; id?: number; message: string };

/** The parent side of one group: a child process with a fresh wasm heap, driven request by request. */
export class GroupClient {
  private child?: ChildProcess;
  private rpc?: RpcClient<RequestBody, unknown>;
  models: ModelInfo[] = [];
  failure?: string;
  /** Why each earlier child died (it was restarted). */
  readonly crashes: string[] = [];

  constructor(
    readonly job: GroupJob,
    private readonly log: (s: string) => void,
  ) {}

  get alive(): boolean {
    return this.failure === undefined && this.child !== undefined;
  }

  /** Replaces a failed child with a fresh one (same weights, rebuilt). */
  async restart(backendChoice: string): Promise<void> {
    if (this.failure !== undefined) this.crashes.push(this.failure);
    this.failure = undefined;
    this.models = [];
    await this.start(backendChoice);
  }

  start(backendChoice: string): Promise<void> {
    // The child entry beside this module: group-child.ts under tsx, group-child.js in dist/.
    const entry = new URL(`./group-child.${import.meta.url.endsWith('.ts') ? 'ts' : 'js'}`, import.meta.url);
    return new Promise((resolve) => {
      const child = fork(fileURLToPath(entry), [], {
        execArgv: process.execArgv,
        env: { ...process.env, TASKMOE_BACKEND: backendChoice, TASKMOE_BENCH_JOB: JSON.stringify(this.job) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const rpc = new RpcClient<RequestBody, unknown>((m) => child.send(m));
      this.child = child;
      this.rpc = rpc;
      child.on('message', (m: ChildMessage) => {
        if (this.child !== child) return; // a replaced child
        if (m.type === 'log') this.log(m.line);
        else if (m.type === 'ready') {
          this.models = m.models;
          resolve();
        } else if (m.type === 'reply') rpc.resolve(m.id, m.data);
        else this.fail(m.message.split('\n').slice(0, 2).join(' '));
      });
      child.on('error', (err) => {
        if (this.child === child) this.fail(err.message);
      });
      child.on('exit', (code, signal) => {
        if (this.child === child && (rpc.pending > 0 || this.models.length === 0))
          this.fail(`exit code ${code}${signal ? `, signal ${signal}` : ''}`);
        resolve();
      });
    });
  }

  private fail(why: string): void {
    if (this.failure === undefined) {
      this.failure = why;
      this.log(`  FAILED: ${this.job.config} ${this.job.variants.join(', ')}: ${why}`);
    }
    this.rpc?.fail(new Error(why), { permanent: true });
    this.child?.kill();
  }

  /** Sends a request and waits for its reply; undefined once the child has failed. */
  async call<T>(req: RequestBody): Promise<T | undefined> {
    if (!this.alive || this.rpc === undefined) return undefined;
    try {
      return (await this.rpc.call(req)) as T;
    } catch {
      return undefined;
    }
  }
}
