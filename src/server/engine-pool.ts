// The engine workers seen from the server thread: which worker serves which pair (the lane
// policy the batcher follows), and sending each batch to its pair's worker.
import type { Lane } from '../batching/index.ts';
import { type BatchResult, EngineWorker, type EngineWorkerOptions, type WorkerIndex } from './engine-worker-client.ts';
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
}

export class EnginePool {
  private readonly workers: EngineWorker[];
  private readonly workerOfPair = new Map<string, WorkerIndex>();

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

  /**
   * The batcher's lanes are the workers. A worker takes a lane's next batch while one decodes, and
   * merges it in as rows finish (continuous batching), so a lane runs two batches at once.
   */
  readonly lanes: LanePolicy = {
    laneOf: (pair) => this.workerOf(pair),
    batchesPerLane: 2,
  };

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
