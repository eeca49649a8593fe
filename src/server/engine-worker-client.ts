// The server thread's side of one engine worker thread: batches go out as messages and come back
// as results; a worker that dies fails its batches with a clear error (none hangs) and is restarted.
import type { Worker } from 'node:worker_threads';
import type { Translation } from '../translator/index.ts';
import { startWorker } from '../util/worker-thread.ts';
import type { CacheSnapshot, EngineWorkerData, FromWorker, ToWorker } from './engine-protocol.ts';
import { BatchCancelledError, EngineError, EngineInputError } from './errors.ts';
import type { BatchKey } from './request.ts';

/** An engine worker's position in its pool; the batcher's lane for the pairs it serves. */
export type WorkerIndex = number;

export interface BatchResult {
  translations: Translation[];
  durationMs: number;
}

export interface EngineWorkerOptions {
  onCacheEvent?: (event: FromWorker & { type: 'cache' }) => void;
  onStats?: (worker: WorkerIndex, cache: CacheSnapshot, tensors: number) => void;
  log?: (msg: string) => void;
}

interface Pending {
  resolve: (msg: FromWorker & { type: 'result' | 'loaded' }) => void;
  reject: (e: Error) => void;
}

/** The server thread's side of one engine worker thread: sends it batches, restarts it when it dies. */
export class EngineWorker {
  private worker!: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private ready!: Promise<void>;
  private closing = false;
  /** Whether the current worker got through start-up; one that fails there is not restarted (it would fail again). */
  private started = false;
  restarts = 0;

  constructor(readonly index: WorkerIndex, private readonly data: EngineWorkerData, private readonly opts: EngineWorkerOptions) {
    this.start();
  }

  whenReady(): Promise<void> {
    return this.ready;
  }

  private start(): void {
    const worker = startWorker(import.meta.url, 'engine-worker', this.data);
    this.worker = worker;
    this.started = false;
    this.ready = new Promise((resolve, reject) => {
      worker.on('message', (msg: FromWorker) => {
        if (msg.type === 'ready') {
          this.started = true;
          this.opts.onStats?.(this.index, msg.cache, msg.tensors);
          resolve();
        } else if (msg.type === 'fatal') {
          reject(new EngineError(`engine worker ${this.index} failed to start: ${msg.message}`));
        } else {
          this.onMessage(msg);
        }
      });
      worker.on('error', (err) => {
        reject(err);
        this.opts.log?.(`engine worker ${this.index} error: ${err.message}`);
      });
      worker.on('exit', (code) => this.onExit(worker, code));
    });
    this.ready.catch(() => {}); // observed by whenReady() callers; a restart must not raise an unhandled rejection
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type === 'cache') {
      this.opts.onCacheEvent?.(msg);
      return;
    }
    if (msg.type !== 'result' && msg.type !== 'loaded' && msg.type !== 'error') return;
    const p = this.pending.get(msg.id);
    if (p === undefined) return;
    this.pending.delete(msg.id);
    if (msg.type !== 'error') {
      this.opts.onStats?.(this.index, msg.cache, msg.tensors);
      p.resolve(msg);
    } else {
      p.reject(msg.input ? new EngineInputError(msg.message) : new EngineError(msg.message));
    }
  }

  private onExit(worker: Worker, code: number): void {
    if (worker !== this.worker) return;
    const failed = [...this.pending.values()];
    this.pending.clear();
    for (const p of failed) p.reject(new EngineError(`engine worker ${this.index} exited (code ${code}) while translating; please retry`));
    if (this.closing || !this.started) return;
    this.restarts++;
    this.opts.log?.(`engine worker ${this.index} exited with code ${code}; restarting`);
    this.start();
  }

  async run(key: BatchKey, sources: number[][], signal?: AbortSignal): Promise<BatchResult> {
    await this.ready;
    const cancelled = () => new BatchCancelledError(`the ${key.pair} batch of ${sources.length} sentences was cancelled`);
    if (signal?.aborted) throw cancelled();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        if (!this.pending.delete(id)) return;
        this.post({ type: 'cancel', id });
        reject(cancelled());
      };
      const settled = () => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        resolve: (msg) => {
          settled();
          if (msg.type === 'result') resolve({ translations: msg.translations, durationMs: msg.durationMs });
        },
        reject: (error) => { settled(); reject(error); },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.post({ type: 'translate', id, key, sources });
    });
  }

  /** Loads the sub-network of `pair` into this worker's cache (a replica); resolves once it is there. */
  async load(pair: string): Promise<void> {
    await this.ready;
    const id = this.nextId++;
    await new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve: () => resolve(), reject });
      this.post({ type: 'load', id, pair });
    });
  }

  private post(msg: ToWorker): void {
    this.worker.postMessage(msg);
  }

  /** For tests and operators: kill the worker as a crash would. */
  async crash(): Promise<void> {
    await this.worker.terminate();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.worker.terminate();
  }
}
