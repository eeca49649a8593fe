// Dynamic batcher: groups sentences of concurrent requests by language pair into batches and
// hands them to an injected runner (the engine worker). It knows nothing of tensors or HTTP.
//
// Scheduling model: one FIFO queue per batch key (a pair and whatever else a batch must share,
// such as decoding options); admission is bounded per pair, over all of the pair's keys. A pair
// may run on several lanes (executors); each batch goes to the least-loaded free one, and a lane
// runs at most batchesPerLane batches at a time. Whenever anything changes (submit, batch done,
// request dropped, close), `schedule()` dispatches ready queues on free lanes, oldest head
// first, and arms a single timer for the next maxDelay expiry; when nothing waits, no timer
// exists, so an idle batcher never keeps the process alive. A running batch whose every request has
// given up (deadline, cancellation, a failed sibling batch) is aborted, so the runner can drop it.

import { systemClock, type Clock } from './clock.ts';
import { CancelledError, DeadlineError, DrainingError, QueueFullError } from './errors.ts';
import { BatchQueue, type BatchItem, type Lane, type QueueKey, type QueuedItem } from './batch-queue.ts';
import type { BatcherObserver, BatcherOptions, BatcherStats, RejectionReason, SubmitOptions } from './types.ts';
import { type PendingRequest, watchGiveUp } from './pending-request.ts';
import { RecentBatchDurations, estimateRetryAfterSeconds } from './retry-after.ts';
import { Lanes, type RunningBatch as Running, nonNegativeLimit, positiveLimit } from './lanes.ts';

type QueuedEntry<K, I, R> = QueuedItem<I, PendingRequest<K, R>>;
type RunningBatch<K, I, R> = Running<QueuedEntry<K, I, R>>;

const SINGLE_LANE: readonly Lane[] = [0];

export class Batcher<K extends QueueKey, I extends BatchItem, R> {
  private readonly maxBatchSentences: number;
  private readonly rowsPerSentence: (key: K) => number;
  private readonly maxBatchTokens: number;
  private readonly maxDelayMs: number;
  private readonly maxQueuedSentences: number;
  private readonly run: BatcherOptions<K, I, R>['run'];
  private readonly lanes: Lanes<QueuedEntry<K, I, R>>;
  /** Every request not yet settled, for abort(). */
  private readonly pending = new Set<PendingRequest<K, R>>();
  private readonly observer: BatcherObserver<K>;
  private readonly clock: Clock;

  /** By key id; only keys with queued items have an entry. */
  private readonly queues = new Map<string, BatchQueue<K, I, PendingRequest<K, R>>>();
  /** Dispatched batches not yet finished: the lanes' own record of what each runs. */
  private readonly running: Set<RunningBatch<K, I, R>>;
  private readonly durations = new RecentBatchDurations();
  private delayTimer: { dueAt: number; cancel: () => void } | undefined;
  private nextSeq = 0;
  private closed = false;
  private drainWaiters: (() => void)[] = [];

  constructor(options: BatcherOptions<K, I, R>) {
    this.maxBatchSentences = positiveLimit('maxBatchSentences', options.maxBatchSentences, 32);
    this.rowsPerSentence = options.rowsPerSentence ?? (() => 1);
    this.maxBatchTokens = positiveLimit('maxBatchTokens', options.maxBatchTokens, 4096);
    this.maxDelayMs = nonNegativeLimit('maxDelayMs', options.maxDelayMs, 10);
    this.maxQueuedSentences = positiveLimit('maxQueuedSentences', options.maxQueuedSentences, 1024);
    this.run = options.run;
    const batchesPerLane = positiveLimit('batchesPerLane', options.batchesPerLane, 1);
    const batchesPerPair = positiveLimit('batchesPerPair', options.batchesPerPair, batchesPerLane);
    this.lanes = new Lanes(options.lanesOf ?? (() => SINGLE_LANE), batchesPerLane, batchesPerPair);
    this.running = this.lanes.running;
    this.observer = options.observer ?? {};
    this.clock = options.clock ?? systemClock;
  }

  /** Resolves with one result per item, in the order of `items`; the items are batched only with items of an equal key. */
  submit(key: K, items: readonly I[], options: SubmitOptions = {}): Promise<R[]> {
    const { deadline, signal } = options;
    const pair = key.pair;
    if (this.closed) return this.refuse('draining', new DrainingError(pair));
    if (signal?.aborted) return this.refuse('cancelled', new CancelledError(pair));
    if (items.length === 0) return Promise.resolve([]);
    // Before the deadline: a request the queue can never take is told so (429 and when to
    // retry), however little time it had left.
    if (this.depth(pair) + items.length > this.maxQueuedSentences) {
      const error = new QueueFullError(pair, this.maxQueuedSentences, this.retryAfterSeconds(pair));
      return this.refuse('queue_full', error);
    }
    if (deadline !== undefined && deadline <= this.clock.now()) {
      return this.refuse('deadline', new DeadlineError(pair, deadline));
    }
    return new Promise<R[]>((resolve, reject) => {
      const request: PendingRequest<K, R> = {
        key,
        results: new Array<R>(items.length),
        unresolved: items.length,
        queued: items.length,
        settled: false,
        resolve,
        reject,
        cleanups: [],
      };
      this.pending.add(request);
      watchGiveUp(request, options, this.clock, (reason, error) => this.rejectEarly(request, reason, error));
      this.enqueue(request, items);
      this.schedule();
    });
  }

  /** Stops accepting requests; what is queued is dispatched without waiting for maxDelay. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.schedule();
  }

  /** Closes the batcher and fails every queued and running request with `error` (a drain out of time). */
  abort(error: Error): void {
    this.close();
    for (const request of [...this.pending]) this.fail(request, error);
    this.schedule();
  }

  /** Closes the batcher and resolves once every queued and running item has finished. */
  drain(): Promise<void> {
    this.close();
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Queued sentences of `pair` (over all of its keys), or of all pairs. */
  depth(pair?: string): number {
    let total = 0;
    for (const queue of this.queues.values())
      if (pair === undefined || queue.key.pair === pair) total += queue.sentences;
    return total;
  }

  stats(): BatcherStats {
    const queuedSentences: Record<string, number> = {};
    for (const { key, sentences } of this.queues.values())
      queuedSentences[key.pair] = (queuedSentences[key.pair] ?? 0) + sentences;
    return { queuedSentences, runningBatches: this.running.size };
  }

  /** The lane policy changed (a lane joined a pair): dispatch whatever can go now. */
  lanesChanged(): void {
    this.schedule();
  }

  private refuse(reason: RejectionReason, error: Error): Promise<never> {
    this.observer.onRejected?.(reason);
    return Promise.reject(error);
  }

  /** Queued sentences on the pair's lanes, shared out over those lanes. */
  private retryAfterSeconds(pair: string): number {
    const lanes = new Set(this.lanes.lanesOf(pair));
    let sentencesAhead = 0;
    for (const queue of this.queues.values()) {
      if (this.lanes.lanesOf(queue.key.pair).some((lane) => lanes.has(lane))) sentencesAhead += queue.sentences;
    }
    return estimateRetryAfterSeconds(
      sentencesAhead / Math.max(1, lanes.size),
      this.maxBatchSentences,
      this.durations.meanMs(),
    );
  }

  /** Deadline or cancellation: the request gives up, whatever of it is still queued or running. */
  private rejectEarly(request: PendingRequest<K, R>, reason: RejectionReason, error: Error): void {
    if (request.settled) return;
    this.observer.onRejected?.(reason);
    this.fail(request, error);
    this.schedule();
  }

  private enqueue(request: PendingRequest<K, R>, items: readonly I[]): void {
    const queue = this.queueOf(request.key);
    const enqueuedAt = this.clock.now();
    items.forEach((item, index) => {
      queue.push({ owner: request, index, item, seq: this.nextSeq++, enqueuedAt });
    });
    this.observer.onQueueDepth?.(request.key.pair, this.depth(request.key.pair));
  }

  private queueOf(key: K): BatchQueue<K, I, PendingRequest<K, R>> {
    let queue = this.queues.get(key.id);
    if (!queue) {
      queue = new BatchQueue(key);
      this.queues.set(key.id, queue);
    }
    return queue;
  }

  /** Brings the batcher up to date after any change; the one place that dispatches. */
  private schedule(): void {
    const now = this.clock.now();
    for (let next = this.nextReadyQueue(now); next; next = this.nextReadyQueue(now)) {
      this.dispatch(next.queue, next.lane, now);
    }
    this.armDelayTimer();
    if (this.drainWaiters.length > 0 && this.isIdle()) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /** The ready queue with a free lane whose head arrived first, and the lane to run it on. */
  private nextReadyQueue(now: number): { queue: BatchQueue<K, I, PendingRequest<K, R>>; lane: Lane } | undefined {
    let oldest: { queue: BatchQueue<K, I, PendingRequest<K, R>>; lane: Lane } | undefined;
    for (const queue of this.queues.values()) {
      if (oldest && queue.head!.seq > oldest.queue.head!.seq) continue;
      if (!this.isReady(queue, now)) continue;
      const lane = this.lanes.leastLoadedFreeLane(queue.key.pair);
      if (lane !== undefined) oldest = { queue, lane };
    }
    return oldest;
  }

  private isReady(queue: BatchQueue<K, I, PendingRequest<K, R>>, now: number): boolean {
    return (
      this.closed ||
      queue.sentences >= this.batchSentences(queue.key) ||
      queue.tokens >= this.maxBatchTokens ||
      now - queue.head!.enqueuedAt >= this.maxDelayMs
    );
  }

  /** Sentences a batch of this key holds: maxBatchSentences rows' worth. */
  private batchSentences(key: K): number {
    return Math.max(1, Math.floor(this.maxBatchSentences / Math.max(1, this.rowsPerSentence(key))));
  }

  /**
   * Keeps one timer, for the earliest maxDelay expiry among queues with a free lane. Queues whose
   * lanes are all full need none: the end of a running batch triggers `schedule()` anyway.
   */
  private armDelayTimer(): void {
    let dueAt = Infinity;
    for (const queue of this.queues.values()) {
      if (this.lanes.leastLoadedFreeLane(queue.key.pair) === undefined) continue;
      dueAt = Math.min(dueAt, queue.head!.enqueuedAt + this.maxDelayMs);
    }
    if (this.delayTimer?.dueAt === dueAt) return;
    this.delayTimer?.cancel();
    this.delayTimer = undefined;
    if (dueAt === Infinity) return;
    const cancel = this.clock.setTimer(() => {
      this.delayTimer = undefined;
      this.schedule();
    }, dueAt - this.clock.now());
    this.delayTimer = { dueAt, cancel };
  }

  private dispatch(queue: BatchQueue<K, I, PendingRequest<K, R>>, lane: Lane, now: number): void {
    const batch = queue.takeBatch(this.batchSentences(queue.key), this.maxBatchTokens);
    if (queue.sentences === 0) this.queues.delete(queue.key.id);
    for (const entry of batch) entry.owner.queued -= 1;
    // Similar lengths side by side keep padding low for the runner; results are mapped back
    // through each entry's owner and index, so the order change is invisible to callers.
    batch.sort((a, b) => a.item.tokens - b.item.tokens);
    const running: RunningBatch<K, I, R> = { lane, pair: queue.key.pair, entries: batch, abort: new AbortController() };
    this.running.add(running);
    this.observer.onQueueDepth?.(queue.key.pair, this.depth(queue.key.pair));
    this.observer.onBatch?.(queue.key, {
      sentences: batch.length,
      tokens: batch.reduce((sum, entry) => sum + entry.item.tokens, 0),
      waitsMs: batch.map((entry) => now - entry.enqueuedAt),
    });
    void this.execute(queue.key, running);
  }

  private async execute(key: K, running: RunningBatch<K, I, R>): Promise<void> {
    const batch = running.entries;
    const startedAt = this.clock.now();
    let outcome: { results: R[] } | { error: unknown };
    try {
      outcome = { results: await this.runChecked(key, running) };
    } catch (error) {
      outcome = { error };
    }
    this.running.delete(running);
    const durationMs = this.clock.now() - startedAt;
    this.durations.record(durationMs);
    if ('results' in outcome) {
      this.observer.onBatchDone?.(key, { sentences: batch.length, durationMs });
      this.deliver(batch, outcome.results);
    } else {
      this.observer.onBatchDone?.(key, { sentences: batch.length, durationMs, error: outcome.error });
      for (const entry of batch) this.fail(entry.owner, outcome.error);
    }
    this.schedule();
  }

  /** A runner that returns the wrong number of results fails its batch rather than hanging it. */
  private async runChecked(key: K, { entries: batch, abort, lane }: RunningBatch<K, I, R>): Promise<R[]> {
    const results = await this.run(
      key,
      batch.map((entry) => entry.item),
      abort.signal,
      lane,
    );
    if (results.length !== batch.length) {
      throw new Error(`run for ${key.pair} returned ${results.length} results for ${batch.length} items`);
    }
    return results;
  }

  private deliver(batch: QueuedEntry<K, I, R>[], results: R[]): void {
    batch.forEach((entry, position) => {
      const request = entry.owner;
      // A request that already gave up (deadline, cancel, failed batch) drops its results.
      if (request.settled) return;
      request.results[entry.index] = results[position]!;
      request.unresolved -= 1;
      if (request.unresolved === 0) {
        this.settle(request);
        request.resolve(request.results);
      }
    });
  }

  /** Rejects the request, drops whatever of it is still queued and aborts batches left with no one waiting; no-op once settled. */
  private fail(request: PendingRequest<K, R>, error: unknown): void {
    if (request.settled) return;
    this.settle(request);
    if (request.queued > 0) this.dropQueued(request);
    for (const running of this.running) {
      if (running.entries.every((entry) => entry.owner.settled)) running.abort.abort();
    }
    request.reject(error);
  }

  private settle(request: PendingRequest<K, R>): void {
    request.settled = true;
    this.pending.delete(request);
    for (const cleanup of request.cleanups) cleanup();
  }

  private dropQueued(request: PendingRequest<K, R>): void {
    const queue = this.queues.get(request.key.id)!;
    request.queued -= queue.removeOwner(request);
    if (queue.sentences === 0) this.queues.delete(request.key.id);
    this.observer.onQueueDepth?.(request.key.pair, this.depth(request.key.pair));
  }

  private isIdle(): boolean {
    return this.queues.size === 0 && this.running.size === 0;
  }
}
