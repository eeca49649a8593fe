// The engine workers seen from the server thread: which worker serves which pair (the lane
// policy the batcher follows), and sending each batch to its pair's worker.
import type { Lane } from '../batching/index.ts';
import { type BatchResult, EngineWorker, type EngineWorkerOptions, type WorkerHealth, type WorkerIndex } from './engine-worker-client.ts';
import type { BatchKey } from './request.ts';

export interface EnginePoolOptions extends EngineWorkerOptions {
  modelDir: string;
  workers: number;
  cacheBytes: number;
  /** Sentences a worker's running batch of one pair may hold before further batches wait to join. */
  maxRows: number;
  /** Every pair the model serves; each is assigned to one worker. */
  pairs: string[];
  /** The id of the sub-network a pair needs (models/subnetwork.ts): pairs with equal ids share a worker. */
  subnetworkOf: (pair: string) => string;
  /** Pairs loaded before start() resolves. */
  warmPairs: string[];
}

/** How the batcher maps pairs onto the pool: a lane is a worker, running this many batches at once. */
export interface LanePolicy {
  laneOf: (pair: string) => Lane;
  batchesPerLane: number;
  batchesPerPair: number;
}

export class EnginePool {
  private readonly workers: EngineWorker[];
  private readonly workerOfPair = new Map<string, WorkerIndex>();

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

  /**
   * The batcher's lanes are the workers. A worker takes a pair's next batch while one decodes, and
   * merges it in as rows finish (continuous batching), so a pair runs two batches at once. Pairs
   * do not wait for each other's slots: the worker's scheduler shares its time between them
   * (translator/scheduler.ts), so a pair's backlog never holds another pair's request in the queue.
   */
  get lanes(): LanePolicy {
    const pairsPerWorker = Math.max(...this.workers.map((w) => this.pairsOf(w.index).length), 1);
    return { laneOf: (pair) => this.workerOf(pair), batchesPerLane: 2 * pairsPerWorker, batchesPerPair: 2 };
  }

  /** The pairs a worker serves. */
  pairsOf(worker: WorkerIndex): string[] {
    return [...this.workerOfPair].filter(([, w]) => w === worker).map(([p]) => p);
  }

  /** The worker a pair is served by. */
  workerOf(pair: string): WorkerIndex {
    const worker = this.workerOfPair.get(pair);
    if (worker === undefined) throw new Error(`no engine worker serves ${pair}`);
    return worker;
  }

  /** Translates a batch on its pair's worker; aborting `signal` drops it there and rejects with BatchCancelledError. */
  run(key: BatchKey, sources: number[][], signal?: AbortSignal): Promise<BatchResult> {
    return this.workers[this.workerOf(key.pair)].run(key, sources, signal);
  }

  get size(): number {
    return this.workers.length;
  }

  /** Every worker's state; the server is ready only while all are. */
  health(): WorkerHealth[] {
    return this.workers.map((w) => w.health());
  }

  get restarts(): number {
    return this.workers.reduce((a, w) => a + w.restarts, 0);
  }

  /** Kills one worker as a crash would (tests). */
  crashWorker(index: WorkerIndex): Promise<void> {
    return this.workers[index].crash();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
