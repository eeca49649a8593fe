// The engine workers seen from the server thread: which workers hold which sub-network (the lane
// policy the batcher follows), sending each batch to the worker the batcher chose, and placing
// replicas of busy sub-networks on other workers (the rule is in replicas.ts).
import type { Lane } from '../batching/index.ts';
import type { CacheSnapshot } from './engine-protocol.ts';
import {
  type BatchResult,
  EngineWorker,
  type EngineWorkerOptions,
  type WorkerHealth,
  type WorkerIndex,
} from './engine-worker-client.ts';
import {
  BusyMeter,
  type ReplicaThresholds,
  type SubnetworkLoad,
  type WorkerLoad,
  hostCpuPressure,
  planReplica,
} from './replicas.ts';
import type { BatchKey } from './request.ts';

export interface EnginePoolOptions extends EngineWorkerOptions {
  modelDir: string;
  workers: number;
  cacheBytes: number;
  /** Sentences a worker's running batch of one pair may hold before further batches wait to join. */
  maxRows: number;
  /** Every pair the model serves. */
  pairs: string[];
  /** The sub-network a pair needs (models/subnetwork.ts): pairs with equal ids share its replicas. */
  subnetworkOf: (pair: string) => { id: string; entries: readonly string[] };
  /** Pairs loaded before start() resolves, each on its sub-network's home worker. */
  warmPairs: string[];
  /** Intra-op threads per worker. */
  intraOpThreads: number;
  /** When a sub-network gets another replica, and how often that is decided (windowMs). */
  replicas: ReplicaThresholds & { windowMs: number };
  /** A sub-network's replica count changed (and once for each at start). */
  onReplicas?: (subnetwork: string, replicas: number) => void;
  /** Each worker's busy fraction over the last window. */
  onWorkerBusy?: (worker: WorkerIndex, ratio: number) => void;
  /** A sub-network gained a replica: its queued batches may go there now (Batcher.lanesChanged). */
  onLanesChanged?: () => void;
}

/** How the batcher maps pairs onto the pool: a lane is a worker, running this many batches at once. */
export interface LanePolicy {
  lanesOf: (pair: string) => readonly Lane[];
  batchesPerLane: number;
  batchesPerPair: number;
}

interface Subnetwork {
  readonly id: string;
  readonly entries: readonly string[];
  /** A pair it serves, to name it to a worker. */
  readonly pair: string;
  /** Workers it is resident on; the first is its home, which it never leaves. */
  replicas: WorkerIndex[];
  /** A worker it is being loaded on. */
  loading?: WorkerIndex;
  /** Queue waits of its sentences dispatched in the current window. */
  waitMs: number;
  waits: number;
}

export class EnginePool {
  private readonly workers: EngineWorker[];
  private readonly subnetworkOfPair = new Map<string, Subnetwork>();
  private readonly subnetworks: Subnetwork[];
  private readonly meter = new BusyMeter();
  /** Each worker's latest cache snapshot, and the size of every entry seen loaded anywhere. */
  private readonly caches = new Map<WorkerIndex, CacheSnapshot>();
  private readonly entryBytes = new Map<string, number>();
  private readonly busyRatios: number[];
  private readonly timer: NodeJS.Timeout;
  private windowStart = performance.now();
  private closed = false;
  /** Whether the last window withheld a replica for CPU pressure (logged when that starts). */
  private pressed = false;

  /** The host's CPU pressure, read each window (replicas.ts); tests replace it. */
  cpuPressure: () => number | undefined = hostCpuPressure;

  /** Resolves once every worker has loaded its warm-up pairs (a worker that fails to start is retried meanwhile). */
  readonly ready: Promise<void>;

  /** Starts the workers; they warm up in the background (see `ready`). */
  constructor(private readonly opts: EnginePoolOptions) {
    // Each sub-network's home is dealt in a fixed order, so sub-networks spread over the workers.
    const byId = new Map<string, Subnetwork>();
    for (const pair of opts.pairs) {
      const { id, entries } = opts.subnetworkOf(pair);
      if (!byId.has(id)) byId.set(id, { id, entries, pair, replicas: [], waitMs: 0, waits: 0 });
      this.subnetworkOfPair.set(pair, byId.get(id)!);
    }
    this.subnetworks = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    this.subnetworks.forEach((s, i) => s.replicas.push(i % opts.workers));
    this.busyRatios = new Array<number>(opts.workers).fill(0);
    const onStats = (worker: WorkerIndex, cache: CacheSnapshot, tensors: number) => {
      this.caches.set(worker, cache);
      for (const [key, bytes] of Object.entries(cache.entryBytes)) this.entryBytes.set(key, bytes);
      opts.onStats?.(worker, cache, tensors);
    };
    this.workers = Array.from(
      { length: opts.workers },
      (_, i) =>
        new EngineWorker(
          i,
          {
            modelDir: opts.modelDir,
            cacheBytes: opts.cacheBytes,
            maxRows: opts.maxRows,
            warmPairs: opts.warmPairs.filter((p) => this.homeOf(p) === i),
            intraOpThreads: opts.intraOpThreads,
          },
          { ...opts, onStats },
        ),
    );
    for (const s of this.subnetworks) opts.onReplicas?.(s.id, 1);
    this.ready = Promise.all(this.workers.map((w) => w.firstReady)).then(() => {});
    this.timer = setInterval(() => this.rebalance(), opts.replicas.windowMs);
    this.timer.unref();
  }

  /**
   * The batcher's lanes are the workers holding the pair's sub-network. A worker takes a pair's next
   * batch while one decodes, and merges it in as rows finish (continuous batching), so a pair runs
   * two batches at once on each of its lanes. Pairs do not wait for each other's slots: the
   * worker's scheduler shares its time between them (translator/scheduler.ts). A replica may bring
   * any pair to any worker, so a lane has room for two batches of every pair.
   */
  get lanes(): LanePolicy {
    return {
      lanesOf: (pair) => this.lanesFor(pair),
      batchesPerLane: 2 * Math.max(1, this.subnetworkOfPair.size),
      batchesPerPair: 2,
    };
  }

  /**
   * The workers a pair's batches may go to: its sub-network's, less a worker loading a replica
   * (extraction holds its thread for seconds, so a batch sent there would wait that long) unless
   * that leaves none.
   */
  private lanesFor(pair: string): readonly WorkerIndex[] {
    const all = this.workersOf(pair);
    const free = all.filter((w) => !this.subnetworks.some((s) => s.loading === w));
    return free.length > 0 ? free : all;
  }

  /** The pairs whose sub-network's home is this worker. */
  pairsOf(worker: WorkerIndex): string[] {
    return [...this.subnetworkOfPair.keys()].filter((p) => this.homeOf(p) === worker);
  }

  /** The workers a pair's sub-network is resident on, its home first. */
  workersOf(pair: string): readonly WorkerIndex[] {
    return this.subnetworkOf(pair).replicas;
  }

  /** The worker a pair's sub-network was first dealt to, and which always holds it. */
  homeOf(pair: string): WorkerIndex {
    return this.subnetworkOf(pair).replicas[0];
  }

  /** Each worker's busy fraction over the last window. */
  busy(): readonly number[] {
    return this.busyRatios;
  }

  /**
   * Translates a batch on `worker` (by default the pair's home); aborting `signal` drops it there
   * and rejects with BatchCancelledError.
   */
  async run(
    key: BatchKey,
    sources: number[][],
    signal?: AbortSignal,
    worker: WorkerIndex = this.homeOf(key.pair),
  ): Promise<BatchResult> {
    const s = this.subnetworkOf(key.pair);
    const keys = [workerKey(worker), `${s.id}@${worker}`];
    keys.forEach((k) => this.meter.start(k));
    try {
      return await this.workers[worker].run(key, sources, signal);
    } finally {
      keys.forEach((k) => this.meter.end(k));
    }
  }

  /** Queue waits of a batch's sentences as it was dispatched: one of the figures replicas follow. */
  observeWaits(pair: string, waitsMs: readonly number[]): void {
    const s = this.subnetworkOf(pair);
    for (const w of waitsMs) s.waitMs += w;
    s.waits += waitsMs.length;
  }

  /**
   * Closes the window: publishes busy ratios, forgets replicas whose worker no longer holds them
   * (evicted by its LRU, or lost in a restart), and places at most one new replica. Runs every
   * windowMs; tests may call it.
   */
  rebalance(): void {
    if (this.closed) return;
    const now = performance.now();
    const windowMs = Math.max(1, now - this.windowStart);
    this.windowStart = now;
    const busyMs = this.meter.take();
    const ratio = (key: string) => Math.min(1, (busyMs.get(key) ?? 0) / windowMs);
    this.workers.forEach((_, i) => {
      this.busyRatios[i] = ratio(workerKey(i));
      this.opts.onWorkerBusy?.(i, this.busyRatios[i]);
    });
    const loads: SubnetworkLoad[] = this.subnetworks.map((s) => {
      this.forgetEvicted(s);
      const load = {
        id: s.id,
        entries: s.entries,
        replicas: s.loading === undefined ? s.replicas : [...s.replicas, s.loading],
        busyRatio: s.replicas.reduce((sum, w) => sum + ratio(`${s.id}@${w}`), 0) / s.replicas.length,
        meanWaitMs: s.waits > 0 ? s.waitMs / s.waits : 0,
      };
      s.waitMs = 0;
      s.waits = 0;
      return load;
    });
    if (this.subnetworks.some((s) => s.loading !== undefined)) return; // one load at a time
    const workers: WorkerLoad[] = [];
    for (const [index, cache] of this.caches) {
      workers.push({
        index,
        busyRatio: this.busyRatios[index],
        freeBytes: this.opts.cacheBytes - cache.bytes,
        holds: new Set(Object.keys(cache.entryBytes)),
      });
    }
    const pressure = this.cpuPressure();
    const placement = planReplica(loads, workers, this.entryBytes, this.opts.replicas, pressure);
    // A replica the load asks for but the CPU pressure withholds is logged once, when that starts.
    const withheld =
      placement === undefined ? planReplica(loads, workers, this.entryBytes, this.opts.replicas) : undefined;
    if (withheld !== undefined && !this.pressed)
      this.opts.log?.(
        `engine pool: no replica of ${withheld.subnetwork} (${withheld.reason}): threads waited for a CPU ${(100 * pressure!).toFixed(0)}% of the last 10 s`,
      );
    this.pressed = withheld !== undefined;
    if (placement !== undefined)
      this.place(
        this.subnetworks.find((s) => s.id === placement.subnetwork)!,
        placement.worker,
        placement.reason,
      );
  }

  private place(s: Subnetwork, worker: WorkerIndex, reason: string): void {
    s.loading = worker;
    this.opts.log?.(`engine pool: loading a replica of ${s.id} on worker ${worker} (${reason})`);
    this.workers[worker]
      .load(s.pair)
      .then(
        () => {
          if (this.closed) return;
          s.replicas.push(worker);
          this.opts.onReplicas?.(s.id, s.replicas.length);
          this.opts.onLanesChanged?.();
        },
        (err: Error) =>
          this.opts.log?.(`engine pool: replica of ${s.id} on worker ${worker} failed to load: ${err.message}`),
      )
      .finally(() => {
        s.loading = undefined;
        // The worker takes batches again.
        if (!this.closed) this.opts.onLanesChanged?.();
      });
  }

  /** Drops the replicas (never the home) whose worker's cache lacks one of the sub-network's entries. */
  private forgetEvicted(s: Subnetwork): void {
    const kept = s.replicas.filter((w, i) => {
      const held = this.caches.get(w)?.entryBytes;
      return i === 0 || held === undefined || s.entries.every((key) => key in held);
    });
    if (kept.length === s.replicas.length) return;
    s.replicas = kept;
    this.opts.onReplicas?.(s.id, kept.length);
  }

  private subnetworkOf(pair: string): Subnetwork {
    const s = this.subnetworkOfPair.get(pair);
    if (s === undefined) throw new Error(`no engine worker serves ${pair}`);
    return s;
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

  /** No more replicas (shutdown): a sub-network load now would only delay the workers' exit. */
  stopRebalancing(): void {
    clearInterval(this.timer);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await Promise.all(this.workers.map((w) => w.close()));
  }
}

function workerKey(worker: WorkerIndex): string {
  return `worker ${worker}`;
}
