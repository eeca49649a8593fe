// The server thread's side of one engine worker thread: batches go out as messages and come back
// as results. A worker that dies or fails to start, at any moment, fails its batches and whoever
// waits for it at once (503 with Retry-After; none hangs) and is restarted with backoff; its
// health feeds /readyz.
import type { Worker } from 'node:worker_threads';
import type { Translation } from '../translator/index.ts';
import { RpcClient } from '../util/rpc.ts';
import { startWorker } from '../util/worker-thread.ts';
import type {
  CacheSnapshot,
  EngineWorkerData,
  FromWorker,
  LoadSubnetwork,
  ToWorker,
  TranslateBatch,
} from './engine-protocol.ts';
import { BatchCancelledError, EngineError, EngineInputError, EngineUnavailableError } from './errors.ts';
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

/** One worker's state, for /readyz and /info. */
export interface WorkerHealth {
  worker: WorkerIndex;
  status: 'starting' | 'ready' | 'down';
  /** Why it is not ready (its last failure), when it is not. */
  reason?: string;
  restarts: number;
  /** What decodes in it, once it has started: 'onnxruntime', or the name of the tfjs backend. */
  backend?: string;
}

/** The reply to a 'load' request: the sub-network is in the worker's cache. */
const LOADED = 'loaded';

/** Wait before the second retry of a failing worker, doubling per consecutive failure up to the cap (the first retry is immediate). */
const RESTART_BACKOFF_MS = 250;
const RESTART_BACKOFF_CAP_MS = 10_000;

/** The server thread's side of one engine worker thread: sends it batches, restarts it when it dies. */
export class EngineWorker {
  private worker!: Worker;
  /** Batches sent to the current worker (its replacement after a crash takes later ones). */
  private readonly rpc = new RpcClient<TranslateBatch | LoadSubnetwork, BatchResult | typeof LOADED>((msg) =>
    this.worker.postMessage(msg),
  );
  /** The current start attempt: resolves when it is ready, rejects the moment it fails. */
  private ready!: Promise<void>;
  private failStart: (e: Error) => void = () => {};
  private closing = false;
  private status: WorkerHealth['status'] = 'starting';
  private reason: string | undefined;
  private backend: string | undefined;
  /** Failures since the worker was last ready: the backoff doubles with each. */
  private failures = 0;
  private retryAt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Resolves the first time the worker is ready. */
  readonly firstReady: Promise<void>;
  private markFirstReady!: () => void;
  restarts = 0;

  constructor(
    readonly index: WorkerIndex,
    private readonly data: EngineWorkerData,
    private readonly opts: EngineWorkerOptions,
  ) {
    this.firstReady = new Promise((resolve) => (this.markFirstReady = resolve));
    this.start();
  }

  health(): WorkerHealth {
    const { index: worker, status, reason, restarts, backend } = this;
    return {
      worker,
      status,
      ...(reason !== undefined && status !== 'ready' ? { reason } : {}),
      restarts,
      ...(backend ? { backend } : {}),
    };
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
          this.backend = msg.backend;
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
    const delay =
      this.failures === 0 ? 0 : Math.min(RESTART_BACKOFF_CAP_MS, RESTART_BACKOFF_MS * 2 ** (this.failures - 1));
    this.failures++;
    this.retryAt = Date.now() + delay;
    const error = this.unavailable(wasReady ? ' while translating' : '');
    this.rpc.fail(error);
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
    if (msg.type === 'result') {
      this.opts.onStats?.(this.index, msg.cache, msg.tensors);
      this.rpc.resolve(msg.id, { translations: msg.translations, durationMs: msg.durationMs });
    } else if (msg.type === 'loaded') {
      this.opts.onStats?.(this.index, msg.cache, msg.tensors);
      this.rpc.resolve(msg.id, LOADED);
    } else if (msg.type === 'error') {
      this.rpc.reject(msg.id, msg.input ? new EngineInputError(msg.message) : new EngineError(msg.message));
    }
  }

  async run(key: BatchKey, sources: number[][], signal?: AbortSignal): Promise<BatchResult> {
    const cancelled = () =>
      new BatchCancelledError(`the ${key.pair} batch of ${sources.length} sentences was cancelled`);
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
    const sent = this.rpc.send({ type: 'translate', key, sources });
    const { id } = sent;
    // A 'translate' request is answered by 'result' (or 'error'), never by LOADED.
    const reply = sent.reply as Promise<BatchResult>;
    if (signal === undefined) return reply;
    return new Promise((resolve, reject) => {
      // Aborting drops the batch in the worker (its sentences are left unanswered) and rejects at once.
      const onAbort = () => {
        if (!this.rpc.forget(id)) return;
        this.worker.postMessage({ type: 'cancel', id } satisfies ToWorker);
        reject(cancelled());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      reply.then(
        (result) => {
          signal.removeEventListener('abort', onAbort);
          resolve(result);
        },
        (error: Error) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }

  /** Loads the sub-network of `pair` into this worker's cache (a replica); resolves once it is there. */
  async load(pair: string): Promise<void> {
    if (this.status === 'down') throw this.unavailable();
    await this.ready;
    await this.rpc.call({ type: 'load', pair });
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
