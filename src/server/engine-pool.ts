// The engine workers seen from the server thread: which worker serves which pair, sending
// batches, and restarting a worker that dies (its batches fail with a clear error; none hangs).
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../util/worker-thread.ts';
import type { CacheSnapshot, EngineWorkerData, FromWorker, ToWorker } from './engine-protocol.ts';
import type { TranslateOptions, Translation } from '../translator/index.ts';

export class EngineError extends Error {}

/** A caller's mistake found by the engine (e.g. an unsupported pair in a checkpoint it loaded). */
export class EngineInputError extends Error {}

/** The batch was cancelled before it finished: the worker drops its unfinished sentences. */
export class BatchCancelledError extends Error {}

export interface BatchResult {
  translations: Translation[];
  durationMs: number;
}

export interface EnginePoolOptions {
  modelDir: string;
  workers: number;
  cacheBytes: number;
  /** Sentences a worker's running batch of one pair may hold before further batches wait to join. */
  maxRows: number;
  /** Every pair the model serves; each is assigned to one worker. */
  pairs: string[];
  /** The sub-network a pair needs: pairs with the same key share a worker (with Token/Target: the target language). */
  subnetworkOf: (pair: string) => string;
  /** Pairs loaded before start() resolves. */
  warmPairs: string[];
  onCacheEvent?: (event: FromWorker & { type: 'cache' }) => void;
  onStats?: (worker: number, cache: CacheSnapshot, tensors: number) => void;
  log?: (msg: string) => void;
}

interface Pending {
  resolve: (r: BatchResult) => void;
  reject: (e: Error) => void;
}

class EngineWorker {
  private worker!: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private ready!: Promise<void>;
  private closing = false;
  /** Whether the current worker got through start-up; one that fails there is not restarted (it would fail again). */
  private started = false;
  restarts = 0;

  constructor(readonly index: number, private readonly data: EngineWorkerData, private readonly opts: EnginePoolOptions) {
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
    if (msg.type !== 'result' && msg.type !== 'error') return;
    const p = this.pending.get(msg.id);
    if (p === undefined) return;
    this.pending.delete(msg.id);
    if (msg.type === 'result') {
      this.opts.onStats?.(this.index, msg.cache, msg.tensors);
      p.resolve({ translations: msg.translations, durationMs: msg.durationMs });
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

  async run(pair: string, sources: number[][], options: TranslateOptions, signal?: AbortSignal): Promise<BatchResult> {
    await this.ready;
    const cancelled = () => new BatchCancelledError(`the ${pair} batch of ${sources.length} sentences was cancelled`);
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
        resolve: (result) => { settled(); resolve(result); },
        reject: (error) => { settled(); reject(error); },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.post({ type: 'translate', id, pair, sources, options });
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

export class EnginePool {
  private readonly workers: EngineWorker[];
  private readonly workerOfPair = new Map<string, number>();

  /** Resolves once every worker has loaded its warm-up pairs; rejects if one fails to start. */
  readonly ready: Promise<void>;

  /** Starts the workers; they warm up in the background (see `ready`). */
  constructor(private readonly opts: EnginePoolOptions) {
    // Sub-networks are dealt to workers in a fixed order, so each lives in exactly one worker's cache.
    const subnetworks = [...new Set(opts.pairs.map(opts.subnetworkOf))].sort();
    for (const pair of opts.pairs) this.workerOfPair.set(pair, subnetworks.indexOf(opts.subnetworkOf(pair)) % opts.workers);
    this.workers = Array.from({ length: opts.workers }, (_, i) => new EngineWorker(i, {
      modelDir: opts.modelDir,
      cacheBytes: opts.cacheBytes,
      maxRows: opts.maxRows,
      warmPairs: opts.warmPairs.filter((p) => this.workerOfPair.get(p) === i),
    }, opts));
    this.ready = Promise.all(this.workers.map((w) => w.whenReady())).then(() => {});
  }

  /** The worker a pair is served by: the batcher's lane. */
  laneOf(pair: string): string {
    return String(this.workerOfPair.get(pair) ?? 0);
  }

  /** Translates a batch on the pair's worker; aborting `signal` drops it there and rejects with BatchCancelledError. */
  run(pair: string, sources: number[][], options: TranslateOptions, signal?: AbortSignal): Promise<BatchResult> {
    return this.workers[Number(this.laneOf(pair))].run(pair, sources, options, signal);
  }

  get size(): number {
    return this.workers.length;
  }

  get restarts(): number {
    return this.workers.reduce((a, w) => a + w.restarts, 0);
  }

  /** Kills one worker as a crash would (tests). */
  crashWorker(index: number): Promise<void> {
    return this.workers[index].crash();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
