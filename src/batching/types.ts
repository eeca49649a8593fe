// The batcher's public types: its options, observer hooks and figures.
import type { Clock } from './clock.ts';
import type { BatchItem, Lane, QueueKey } from './batch-queue.ts';

export type RejectionReason = 'queue_full' | 'deadline' | 'cancelled' | 'draining';

export interface DispatchedBatch {
  sentences: number;
  tokens: number;
  /** Time each item spent queued, in the order the batch was handed to `run`. */
  waitsMs: number[];
}

export interface FinishedBatch {
  sentences: number;
  durationMs: number;
  error?: unknown;
}

/** Metrics hooks; called synchronously from the batcher, so they must not throw. */
export interface BatcherObserver<K extends QueueKey> {
  /** The pair's queued sentences, summed over all of its keys. */
  onQueueDepth?(pair: string, depthSentences: number): void;
  onBatch?(key: K, batch: DispatchedBatch): void;
  onBatchDone?(key: K, batch: FinishedBatch): void;
  onRejected?(reason: RejectionReason): void;
}

export interface BatcherOptions<K extends QueueKey, I extends BatchItem, R> {
  maxBatchSentences?: number;
  /**
   * Rows one sentence of a key decodes (its beam; default 1). A batch holds at most
   * maxBatchSentences rows, so a beam batch's decoder step costs what a full greedy batch's does.
   */
  rowsPerSentence?: (key: K) => number;
  maxBatchTokens?: number;
  maxDelayMs?: number;
  /** Bound on the queued sentences of each pair, whatever their keys. */
  maxQueuedSentences?: number;
  /**
   * Returns one result per item, in the order of `batch`; a rejection fails the whole batch.
   * `signal` aborts once no request in the batch wants its results any more.
   */
  run: (key: K, batch: I[], signal: AbortSignal, lane: Lane) => Promise<R[]>;
  /**
   * The lanes (executors) that may run a pair's batches, asked at every dispatch, so the set may
   * change over time; each batch goes to the least-loaded free one (fewest running sentences, then
   * earliest in the list). Pairs sharing a lane share its executor. Default: one lane for all pairs.
   */
  lanesOf?: (pair: string) => readonly Lane[];
  /**
   * Batches a lane runs at once (default 1). An executor that batches continuously takes more than
   * one: the next batch joins the running one as its sentences finish, instead of queueing here.
   */
  batchesPerLane?: number;
  /** Of those, batches one pair may run at once (default: all of them), so one pair's backlog leaves the others room on a shared lane. */
  batchesPerPair?: number;
  observer?: BatcherObserver<K>;
  clock?: Clock;
}

export interface SubmitOptions {
  /** Milliseconds since the epoch, on the batcher's clock. */
  deadline?: number;
  signal?: AbortSignal;
}

export interface BatcherStats {
  /** Queued sentences of each pair that has any. */
  queuedSentences: Record<string, number>;
  runningBatches: number;
}
