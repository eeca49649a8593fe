// The engine workers seen from the server thread: which worker serves which pair, sending
// batches, and restarting a worker that dies or fails to start, with backoff, at any moment (its
// batches fail at once with a clear error; none hangs). Each worker's health feeds /readyz.
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../util/worker-thread.ts';
import type { CacheSnapshot, EngineWorkerData, FromWorker, ToWorker } from './engine-protocol.ts';
import type { TranslateOptions, Translation } from '../translator/index.ts';

export class EngineError extends Error {}

/** A caller's mistake found by the engine (e.g. an unsupported pair in a checkpoint it loaded). */
export class EngineInputError extends Error {}

/** The batch was cancelled before it finished: the worker drops its unfinished sentences. */
export class BatchCancelledError extends Error {}

/** The pair's worker is down (crashed, or failed to start) and waits to be restarted: retry after the given seconds. */
export class EngineUnavailableError extends EngineError {
  constructor(message: string, readonly retryAfterSeconds: number) {
    super(message);
  }
}

/** One worker's state, for /readyz and /info. */
export interface LaneHealth {
  worker: number;
  status: 'starting' | 'ready' | 'down';
  /** Why it is not ready (its last failure), when it is not. */
  reason?: string;
  restarts: number;
}

/** Wait before the second retry of a failing worker, doubling per consecutive failure up to the cap (the first retry is immediate). */
const RESTART_BACKOFF_MS = 250;
const RESTART_BACKOFF_CAP_MS = 10_000;

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
  /** The current start attempt: resolves when it is ready, rejects the moment it fails. */
  private ready!: Promise<void>;
  private failStart: (e: Error) => void = () => {};
  private closing = false;
  private status: LaneHealth['status'] = 'starting';
  private reason: string | undefined;
  /** Failures since the worker was last ready: the backoff doubles with each. */
  private failures = 0;
  private retryAt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Resolves the first time the worker is ready. */
  readonly firstReady: Promise<void>;
  private markFirstReady!: () => void;
  restarts = 0;

  constructor(readonly index: number, private readonly data: EngineWorkerData, private readonly opts: EnginePoolOptions) {
    this.firstReady = new Promise((resolve) => (this.markFirstReady = resolve));
    this.start();
  }

  health(): LaneHealth {
    return { worker: this.index, status: this.status, ...(this.reason !== undefined && this.status !== 'ready' ? { reason: this.reason } : {}), restarts: this.restarts };
  }

  private start(): void {
    const worker = startWorker(import.meta.url, 'engine-worker', this.data);
    this.worker = worker;
    this.status = 'starting';
    this.ready = new Promise((resolve, reject) => {
      this.failStart = reject;
      worker.on('message', (msg: FromWorker) => {
        if (worker !== this.worker) return;
        if (msg.type === 'ready') {
          this.status = 'ready';
          this.failures = 0;
          this.reason = undefined;
          this.opts.onStats?.(this.index, msg.cache, msg.tensors);
          resolve();
          this.markFirstReady();
        } else if (msg.type === 'fatal') {
          this.fail(worker, `failed to start: ${msg.message}`);
        } else {
          this.onMessage(msg);
        }
      });
      worker.on('error', (err) => this.fail(worker, `error: ${err.message}`));
      worker.on('exit', (code) => this.fail(worker, `exited with code ${code}`));
    });
    this.ready.catch(() => {}); // observed by run() callers; a failed start must not raise an unhandled rejection
  }

  /**
   * The worker died or could not start, at any moment: its batches and whoever waits for it fail
   * now (503 with Retry-After), and a new one starts after a backoff.
   */
  private fail(worker: Worker, what: string): void {
    if (worker !== this.worker || this.closing || this.status === 'down') return;
    const wasReady = this.status === 'ready';
    this.status = 'down';
    this.reason = `engine worker ${this.index} ${what}`;
    // A worker that was serving restarts at once; one that keeps failing waits longer each time.
    const delay = this.failures === 0 ? 0 : Math.min(RESTART_BACKOFF_CAP_MS, RESTART_BACKOFF_MS * 2 ** (this.failures - 1));
    this.failures++;
    this.retryAt = Date.now() + delay;
    const failed = [...this.pending.values()];
    this.pending.clear();
    const error = this.unavailable(wasReady ? ' while translating' : '');
    for (const p of failed) p.reject(error);
    this.failStart(error);
    void worker.terminate();
    this.opts.log?.(`${this.reason}; restarting in ${delay} ms`);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closing) return;
      this.restarts++;
      this.start();
    }, delay);
    this.retryTimer.unref();
  }

  private unavailable(when = ''): EngineUnavailableError {
    const seconds = Math.max(1, Math.ceil((this.retryAt - Date.now()) / 1000));
    return new EngineUnavailableError(`${this.reason}${when}; it restarts, please retry`, seconds);
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

  async run(pair: string, sources: number[][], options: TranslateOptions, signal?: AbortSignal): Promise<BatchResult> {
    const cancelled = () => new BatchCancelledError(`the ${pair} batch of ${sources.length} sentences was cancelled`);
    // Down: fail now. Starting: wait, but only while this start attempt lives and the batch is wanted.
    if (this.status === 'down') throw this.unavailable();
    if (this.status === 'starting') {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(cancelled());
        signal?.addEventListener('abort', onAbort, { once: true });
        this.ready.then(resolve, reject).finally(() => signal?.removeEventListener('abort', onAbort));
      });
    }
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
    clearTimeout(this.retryTimer);
    this.failStart(new EngineError(`engine worker ${this.index} is shutting down`));
    await this.worker.terminate();
  }
}

export class EnginePool {
  private readonly workers: EngineWorker[];
  private readonly workerOfPair = new Map<string, number>();

  /** Resolves once every worker has loaded its warm-up pairs (a worker that fails to start is retried meanwhile). */
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
    this.ready = Promise.all(this.workers.map((w) => w.firstReady)).then(() => {});
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

  /** Every worker's state; the server is ready only while all are. */
  health(): LaneHealth[] {
    return this.workers.map((w) => w.health());
  }

  /** The pairs a worker serves. */
  pairsOf(worker: number): string[] {
    return [...this.workerOfPair].filter(([, w]) => w === worker).map(([p]) => p);
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
