import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  Batcher,
  CancelledError,
  DeadlineError,
  DrainingError,
  QueueFullError,
  type BatcherOptions,
  type BatchItem,
  type QueueKey,
  type Clock,
  type DispatchedBatch,
  type FinishedBatch,
  type RejectionReason,
} from '../../src/batching/index.ts';

// Lets promise chains (run results → request settlement → next dispatch) run to completion.
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Time stands still until `advance`, which fires due timers in order. */
class FakeClock implements Clock {
  private time = 1_000_000;
  private timers: { dueAt: number; callback: () => void }[] = [];

  now(): number {
    return this.time;
  }

  setTimer(callback: () => void, delayMs: number): () => void {
    const timer = { dueAt: this.time + Math.max(0, delayMs), callback };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((pending) => pending !== timer);
    };
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    for (let next = this.nextDue(target); next; next = this.nextDue(target)) {
      this.timers = this.timers.filter((pending) => pending !== next);
      this.time = next.dueAt;
      next.callback();
      await flush();
    }
    this.time = target;
    await flush();
  }

  private nextDue(limit: number): { dueAt: number; callback: () => void } | undefined {
    const due = this.timers.filter((timer) => timer.dueAt <= limit);
    return due.sort((a, b) => a.dueAt - b.dueAt)[0];
  }
}

/** A test item: its payload names it in the results. */
interface Item extends BatchItem {
  payload: string;
}

/** A key per pair; `id` tells keys of one pair apart (e.g. by decoding options). */
function key(pair: string, id = pair): QueueKey {
  return { pair, id };
}

interface RunCall {
  pair: string;
  items: Item[];
  signal: AbortSignal;
  lane: number;
  /** Resolves with `pair:payload` for each item, so mapping mistakes show in the results. */
  succeed(): void;
  fail(error: Error): void;
}

function fakeRunner(): { calls: RunCall[]; run: BatcherOptions<QueueKey, Item, string>['run'] } {
  const calls: RunCall[] = [];
  const run = ({ pair }: QueueKey, items: Item[], signal: AbortSignal, lane: number): Promise<string[]> =>
    new Promise((resolve, reject) => {
      calls.push({
        pair,
        items,
        signal,
        lane,
        succeed: () => resolve(items.map((item) => `${pair}:${String(item.payload)}`)),
        fail: reject,
      });
    });
  return { calls, run };
}

function setup(options: Partial<BatcherOptions<QueueKey, Item, string>> = {}) {
  const clock = new FakeClock();
  const runner = fakeRunner();
  const batcher = new Batcher<QueueKey, Item, string>({ run: runner.run, clock, maxDelayMs: 10, ...options });
  return { clock, runner, batcher };
}

function items(...payloads: string[]): Item[] {
  return payloads.map((payload) => ({ tokens: 1, payload }));
}

function payloadsOf(call: RunCall | undefined): unknown[] {
  assert.ok(call, 'expected a run call');
  return call.items.map((item) => item.payload);
}

interface Outcome<T> {
  settled: boolean;
  value?: T;
  error?: unknown;
}

// Attaches handlers at once so that a rejection is never "unhandled" while a test waits.
function track<T>(promise: Promise<T>): Outcome<T> {
  const outcome: Outcome<T> = { settled: false };
  promise.then(
    (value) => Object.assign(outcome, { settled: true, value }),
    (error: unknown) => Object.assign(outcome, { settled: true, error }),
  );
  return outcome;
}

test('batches hold a single pair and results go back to the right requests', async () => {
  const { clock, runner, batcher } = setup({ lanesOf: () => [0] });
  const deA = track(batcher.submit(key('en-de'), items('a1', 'a2')));
  const frB = track(batcher.submit(key('en-fr'), items('b1')));
  const deC = track(batcher.submit(key('en-de'), items('c1')));
  await clock.advance(10);
  runner.calls[0]!.succeed();
  await flush();
  runner.calls[1]!.succeed();
  await flush();

  assert.deepEqual(
    runner.calls.map((call) => [call.pair, payloadsOf(call)]),
    [
      ['en-de', ['a1', 'a2', 'c1']],
      ['en-fr', ['b1']],
    ],
  );
  assert.deepEqual(deA.value, ['en-de:a1', 'en-de:a2']);
  assert.deepEqual(frB.value, ['en-fr:b1']);
  assert.deepEqual(deC.value, ['en-de:c1']);
});

test('a queue with maxBatchSentences items is dispatched without waiting', async () => {
  const { runner, batcher } = setup({ maxBatchSentences: 4, maxDelayMs: 1000 });
  void batcher.submit(key('en-de'), items('a', 'b', 'c'));
  await flush();
  assert.equal(runner.calls.length, 0);

  void batcher.submit(key('en-de'), items('d', 'e'));
  await flush();
  assert.deepEqual(payloadsOf(runner.calls[0]), ['a', 'b', 'c', 'd']);
  assert.equal(batcher.depth('en-de'), 1);
});

test('a queue with maxBatchTokens tokens is dispatched, and batches stay within the token limit', async () => {
  const { runner, batcher } = setup({ maxBatchTokens: 10, maxDelayMs: 1000 });
  void batcher.submit(key('en-de'), [
    { tokens: 4, payload: 'a' },
    { tokens: 4, payload: 'b' },
  ]);
  await flush();
  assert.equal(runner.calls.length, 0);

  void batcher.submit(key('en-de'), [{ tokens: 3, payload: 'c' }]);
  await flush();
  // 4 + 4 + 3 > 10, so 'c' waits for the next batch.
  assert.deepEqual(payloadsOf(runner.calls[0]), ['a', 'b']);
  assert.equal(batcher.depth('en-de'), 1);
});

test('an item longer than maxBatchTokens still runs, alone', async () => {
  const { clock, runner, batcher } = setup({ maxBatchTokens: 10 });
  const request = track(
    batcher.submit(key('en-de'), [
      { tokens: 25, payload: 'long' },
      { tokens: 1, payload: 'short' },
    ]),
  );
  await flush();
  assert.deepEqual(payloadsOf(runner.calls[0]), ['long']);
  runner.calls[0]!.succeed();
  await clock.advance(10);
  assert.deepEqual(payloadsOf(runner.calls[1]), ['short']);
  runner.calls[1]!.succeed();
  await flush();
  assert.deepEqual(request.value, ['en-de:long', 'en-de:short']);
});

test('a partial batch is dispatched once its oldest item has waited maxDelayMs', async () => {
  const batches: DispatchedBatch[] = [];
  const { clock, runner, batcher } = setup({
    maxDelayMs: 10,
    observer: { onBatch: (_pair, batch) => batches.push(batch) },
  });
  void batcher.submit(key('en-de'), items('a'));
  await clock.advance(4);
  void batcher.submit(key('en-de'), items('b'));
  await clock.advance(5);
  assert.equal(runner.calls.length, 0);

  await clock.advance(1);
  assert.deepEqual(payloadsOf(runner.calls[0]), ['a', 'b']);
  assert.deepEqual(batches, [{ sentences: 2, tokens: 2, waitsMs: [10, 6] }]);
});

test('on a shared lane the ready queue with the oldest head goes first', async () => {
  const { clock, runner, batcher } = setup({ maxBatchSentences: 8 });
  void batcher.submit(key('xx-yy'), items('busy'));
  await clock.advance(10);
  assert.equal(runner.calls.length, 1);

  // While the lane is busy: en-de gets the first queue, but after its first request is
  // cancelled its head is younger than en-fr's, and it is also the longer queue.
  const abort = new AbortController();
  void batcher.submit(key('en-de'), items('de-old'), { signal: abort.signal }).catch(() => {});
  await clock.advance(1);
  void batcher.submit(key('en-fr'), items('fr'));
  await clock.advance(1);
  void batcher.submit(key('en-de'), items('de1', 'de2', 'de3'));
  abort.abort();
  await clock.advance(20);

  runner.calls[0]!.succeed();
  await flush();
  assert.equal(runner.calls[1]?.pair, 'en-fr');
  runner.calls[1]!.succeed();
  await flush();
  assert.equal(runner.calls[2]?.pair, 'en-de');
  assert.deepEqual(payloadsOf(runner.calls[2]), ['de1', 'de2', 'de3']);
});

test('each lane runs one batch at a time, and lanes run in parallel', async () => {
  const { runner, batcher } = setup({
    maxBatchSentences: 2,
    lanesOf: (pair) => [pair.startsWith('en-') ? 0 : 1],
  });
  void batcher.submit(key('en-de'), items('de1', 'de2'));
  void batcher.submit(key('en-fr'), items('fr1', 'fr2'));
  void batcher.submit(key('de-fr'), items('x1', 'x2'));
  await flush();

  assert.deepEqual(
    runner.calls.map((call) => call.pair),
    ['en-de', 'de-fr'],
  );
  assert.deepEqual(batcher.stats(), { queuedSentences: { 'en-fr': 2 }, runningBatches: 2 });

  runner.calls[1]!.succeed(); // the other lane finishing frees nothing for en-fr
  await flush();
  assert.equal(runner.calls.length, 2);

  runner.calls[0]!.succeed();
  await flush();
  assert.equal(runner.calls[2]?.pair, 'en-fr');
});

test('a pair on several lanes: each batch goes to the least-loaded free lane, counting every pair\'s running sentences', async () => {
  const lanes: Record<string, number[]> = { 'en-de': [0], 'en-fr': [0, 1] };
  const { runner, batcher } = setup({ maxBatchSentences: 3, maxDelayMs: 0, batchesPerLane: 2, lanesOf: (pair) => lanes[pair] });
  void batcher.submit(key('en-de'), items('d1', 'd2', 'd3'));
  await flush();
  void batcher.submit(key('en-fr'), items('f1'));
  await flush();
  // Lane 0 runs three sentences of en-de: en-fr's first batch goes to the idle lane 1.
  assert.deepEqual(runner.calls.map((c) => [c.pair, c.lane]), [['en-de', 0], ['en-fr', 1]]);
  void batcher.submit(key('en-fr'), items('f2', 'f3'));
  await flush();
  // Lane 1 runs one sentence, lane 0 three: lane 1 again, now full (two batches).
  assert.deepEqual(runner.calls[2] && [runner.calls[2].pair, runner.calls[2].lane], ['en-fr', 1]);
  void batcher.submit(key('en-fr'), items('f4'));
  await flush();
  assert.deepEqual([runner.calls[3]?.pair, runner.calls[3]?.lane], ['en-fr', 0], 'lane 1 is full, so lane 0 takes it');
  void batcher.submit(key('en-fr'), items('f5'));
  await flush();
  assert.equal(runner.calls.length, 4, 'both lanes are full: the batch waits');
  runner.calls[0]!.succeed(); // lane 0 frees a slot
  await flush();
  assert.deepEqual([runner.calls[4]?.pair, runner.calls[4]?.lane], ['en-fr', 0]);
  // A lane that joins while a batch waits is used once the batcher is told (lanesChanged).
  void batcher.submit(key('en-de'), items('d4'));
  await flush();
  assert.equal(runner.calls.length, 5, 'lane 0 is full');
  lanes['en-de'] = [0, 2];
  batcher.lanesChanged();
  await flush();
  assert.deepEqual([runner.calls[5]?.pair, runner.calls[5]?.lane], ['en-de', 2]);
});

test('with batchesPerLane 2 a lane takes a second batch while one runs, and a third waits for a free slot', async () => {
  const { runner, batcher } = setup({ maxBatchSentences: 2, batchesPerLane: 2 });
  const first = track(batcher.submit(key('en-de'), items('a1', 'a2')));
  void batcher.submit(key('en-de'), items('b1', 'b2'));
  void batcher.submit(key('en-fr'), items('c1', 'c2'));
  await flush();
  assert.deepEqual(runner.calls.map(payloadsOf), [['a1', 'a2'], ['b1', 'b2']]);
  assert.deepEqual(batcher.stats(), { queuedSentences: { 'en-fr': 2 }, runningBatches: 2 });

  runner.calls[0]!.succeed();
  await flush();
  assert.deepEqual(first.value, ['en-de:a1', 'en-de:a2']);
  assert.deepEqual(payloadsOf(runner.calls[2]), ['c1', 'c2']);
  assert.equal(batcher.stats().runningBatches, 2);
  assert.throws(() => setup({ batchesPerLane: 0 }), /batchesPerLane must be at least 1/);
});

test('a batch is sorted by length for the runner and results are mapped back', async () => {
  const { clock, runner, batcher } = setup();
  const request = track(
    batcher.submit(key('en-de'), [
      { tokens: 5, payload: 'five' },
      { tokens: 1, payload: 'one' },
      { tokens: 3, payload: 'three' },
    ]),
  );
  await clock.advance(10);
  assert.deepEqual(
    runner.calls[0]!.items.map((item) => item.tokens),
    [1, 3, 5],
  );
  runner.calls[0]!.succeed();
  await flush();
  assert.deepEqual(request.value, ['en-de:five', 'en-de:one', 'en-de:three']);
});

test('a request larger than a batch is split across batches and reassembled in order', async () => {
  const { clock, runner, batcher } = setup({ maxBatchSentences: 3 });
  const payloads = ['s0', 's1', 's2', 's3', 's4', 's5', 's6', 's7'];
  const request = track(batcher.submit(key('en-de'), items(...payloads)));
  // Ready for the final partial batch only once maxDelay has passed.
  await clock.advance(10);
  for (let i = 0; i < 3; i += 1) {
    runner.calls[i]!.succeed();
    await flush();
    assert.equal(request.settled, i === 2);
  }
  assert.deepEqual(
    runner.calls.map((call) => call.items.length),
    [3, 3, 2],
  );
  assert.deepEqual(
    request.value,
    payloads.map((payload) => `en-de:${payload}`),
  );
});

test('a request that would overflow its queue is refused with a retry-after, nothing enqueued', async () => {
  const rejections: RejectionReason[] = [];
  const { clock, runner, batcher } = setup({
    maxBatchSentences: 2,
    maxQueuedSentences: 4,
    observer: { onRejected: (reason) => rejections.push(reason) },
  });
  // One finished batch that took 2 s is the history the estimate works from.
  void batcher.submit(key('en-de'), items('warm1', 'warm2'));
  await flush();
  await clock.advance(2000);
  runner.calls[0]!.succeed();
  await flush();

  void batcher.submit(key('en-de'), items('run1', 'run2'));
  void batcher.submit(key('en-de'), items('q1', 'q2', 'q3', 'q4'));
  await flush();
  assert.equal(batcher.depth('en-de'), 4);

  await assert.rejects(batcher.submit(key('en-de'), items('overflow')), (error: unknown) => {
    assert.ok(error instanceof QueueFullError);
    assert.match(error.message, /en-de.*4/);
    // Two queued batches plus the one in flight, at 2 s each.
    assert.equal(error.retryAfterSeconds, 6);
    return true;
  });
  assert.equal(batcher.depth('en-de'), 4);
  assert.deepEqual(rejections, ['queue_full']);

  // Another pair has its own bound.
  assert.equal(batcher.depth('en-fr'), 0);
  void batcher.submit(key('en-fr'), items('fr'));
  assert.equal(batcher.depth('en-fr'), 1);

  for (let i = 1; i <= 3; i += 1) {
    runner.calls[i]!.succeed();
    await flush();
  }
  const everyPayload = runner.calls.flatMap((call) => payloadsOf(call));
  assert.ok(!everyPayload.includes('overflow'));
});

test('a deadline that passes while items are queued drops them and rejects', async () => {
  const rejections: RejectionReason[] = [];
  const { clock, runner, batcher } = setup({
    maxBatchSentences: 1,
    observer: { onRejected: (reason) => rejections.push(reason) },
  });
  void batcher.submit(key('xx-yy'), items('busy'));
  await flush();
  const late = track(batcher.submit(key('en-de'), items('a', 'b'), { deadline: clock.now() + 50 }));
  await clock.advance(49);
  assert.equal(late.settled, false);

  await clock.advance(1);
  assert.ok(late.error instanceof DeadlineError);
  assert.match(late.error.message, /en-de/);
  assert.equal(batcher.depth('en-de'), 0);
  assert.deepEqual(rejections, ['deadline']);

  runner.calls[0]!.succeed();
  await clock.advance(100);
  assert.equal(runner.calls.length, 1);
});

test('a deadline that passes while items run rejects at once and drops their results', async () => {
  const { clock, runner, batcher } = setup();
  const late = track(batcher.submit(key('en-de'), items('a'), { deadline: clock.now() + 30 }));
  const patient = track(batcher.submit(key('en-de'), items('b')));
  await clock.advance(10);
  assert.equal(runner.calls.length, 1);

  await clock.advance(20);
  assert.ok(late.error instanceof DeadlineError);

  runner.calls[0]!.succeed();
  await flush();
  assert.deepEqual(patient.value, ['en-de:b']);
  assert.equal(late.value, undefined);
});

test('a running batch is aborted once every request in it has given up, and only then', async () => {
  const { clock, runner, batcher } = setup({ maxBatchSentences: 2, batchesPerLane: 2 });
  const abort = new AbortController();
  const late = track(batcher.submit(key('en-de'), items('a'), { deadline: clock.now() + 30 }));
  const gone = track(batcher.submit(key('en-de'), items('b'), { signal: abort.signal }));
  const split = track(batcher.submit(key('en-fr'), items('x', 'y', 'z'), { deadline: clock.now() + 30 }));
  const patient = track(batcher.submit(key('en-fr'), items('w')));
  await clock.advance(10);
  const [deBatch, frFirst] = runner.calls;
  assert.deepEqual(payloadsOf(deBatch), ['a', 'b']);
  assert.deepEqual(payloadsOf(frFirst), ['x', 'y']);

  await clock.advance(20); // the deadlines pass: 'b' still waits for the en-de batch
  assert.ok(late.error instanceof DeadlineError);
  assert.ok(split.error instanceof DeadlineError);
  assert.equal(deBatch!.signal.aborted, false);
  assert.equal(frFirst!.signal.aborted, true, 'the batch holding only the expired request');

  abort.abort();
  await flush();
  assert.ok(gone.error instanceof CancelledError);
  assert.equal(deBatch!.signal.aborted, true);

  frFirst!.fail(new Error('aborted by the runner'));
  await clock.advance(10);
  const frNext = runner.calls[2]; // the expired request's queued 'z' was dropped with it
  assert.deepEqual(payloadsOf(frNext), ['w']);
  frNext!.succeed();
  deBatch!.succeed();
  await flush();
  assert.deepEqual(patient.value, ['en-fr:w']);
  assert.equal(frNext!.signal.aborted, false);
});

test('a deadline already past at submit is refused at once', async () => {
  const { clock, batcher } = setup();
  await assert.rejects(batcher.submit(key('en-de'), items('a'), { deadline: clock.now() }), DeadlineError);
  assert.equal(batcher.depth(), 0);
});

test('a request the queue cannot take is refused as queue-full even when its deadline has passed', async () => {
  const { clock, batcher } = setup({ maxQueuedSentences: 2 });
  await assert.rejects(batcher.submit(key('en-de'), items('a', 'b', 'c'), { deadline: clock.now() }), QueueFullError);
  await assert.rejects(batcher.submit(key('en-de'), items('a', 'b'), { deadline: clock.now() }), DeadlineError);
  assert.equal(batcher.depth(), 0);
});

test('aborting the signal drops queued items and rejects with CancelledError', async () => {
  const rejections: RejectionReason[] = [];
  const { clock, runner, batcher } = setup({ observer: { onRejected: (reason) => rejections.push(reason) } });
  const abort = new AbortController();
  const cancelled = track(batcher.submit(key('en-de'), items('a', 'b'), { signal: abort.signal }));
  const kept = track(batcher.submit(key('en-de'), items('c')));
  await clock.advance(5);
  abort.abort();
  await flush();

  assert.ok(cancelled.error instanceof CancelledError);
  assert.equal(batcher.depth('en-de'), 1);
  assert.deepEqual(rejections, ['cancelled']);

  await clock.advance(10);
  assert.deepEqual(payloadsOf(runner.calls[0]), ['c']);
  runner.calls[0]!.succeed();
  await flush();
  assert.deepEqual(kept.value, ['en-de:c']);

  await assert.rejects(batcher.submit(key('en-de'), items('d'), { signal: abort.signal }), CancelledError);
});

test('a failed batch rejects only its requests, drops their queued rest, and serving goes on', async () => {
  const finished: FinishedBatch[] = [];
  const { clock, runner, batcher } = setup({
    maxBatchSentences: 2,
    observer: { onBatchDone: (_pair, batch) => finished.push(batch) },
  });
  const split = track(batcher.submit(key('en-de'), items('x', 'y', 'z')));
  const other = track(batcher.submit(key('en-fr'), items('f')));
  await flush();
  assert.deepEqual(payloadsOf(runner.calls[0]), ['x', 'y']);
  assert.equal(batcher.depth('en-de'), 1);

  const boom = new Error('engine crashed');
  runner.calls[0]!.fail(boom);
  await flush();
  assert.equal(split.error, boom);
  assert.equal(batcher.depth('en-de'), 0);
  assert.equal(finished[0]?.error, boom);

  await clock.advance(10);
  assert.equal(runner.calls[1]?.pair, 'en-fr');
  runner.calls[1]!.succeed();
  await flush();
  assert.deepEqual(other.value, ['en-fr:f']);

  const later = track(batcher.submit(key('en-de'), items('w')));
  await clock.advance(10);
  runner.calls[2]!.succeed();
  await flush();
  assert.deepEqual(later.value, ['en-de:w']);
});

test('a runner returning the wrong number of results fails its batch', async () => {
  const clock = new FakeClock();
  const batcher = new Batcher<QueueKey, Item, string>({ run: async () => ['only one'], clock });
  const request = track(batcher.submit(key('en-de'), items('a', 'b')));
  await clock.advance(10);
  assert.ok(request.error instanceof Error);
  assert.match(request.error.message, /1 results for 2 items/);
});

test('drain dispatches queued work at once and waits for it; closed batchers refuse work', async () => {
  const { runner, batcher } = setup({ maxDelayMs: 1000, lanesOf: (pair) => [['en-de', 'en-fr'].indexOf(pair)] });
  const de = track(batcher.submit(key('en-de'), items('a')));
  const fr = track(batcher.submit(key('en-fr'), items('b')));
  const drained = track(batcher.drain());
  await flush();
  assert.equal(runner.calls.length, 2);

  await assert.rejects(batcher.submit(key('en-de'), items('c')), (error: unknown) => {
    assert.ok(error instanceof DrainingError);
    assert.match(error.message, /en-de/);
    return true;
  });

  runner.calls[0]!.succeed();
  await flush();
  assert.equal(drained.settled, false);
  runner.calls[1]!.succeed();
  await flush();
  assert.equal(drained.settled, true);
  assert.deepEqual(de.value, ['en-de:a']);
  assert.deepEqual(fr.value, ['en-fr:b']);
  await batcher.drain();
});

test('no timers remain once the batcher is idle', async () => {
  const { clock, runner, batcher } = setup();
  const abort = new AbortController();
  void batcher.submit(key('en-de'), items('a'), { signal: abort.signal }).catch(() => {});
  assert.equal(clock.pendingTimers, 1);
  abort.abort(); // the queue empties before its maxDelay timer fires
  assert.equal(clock.pendingTimers, 0);

  void batcher.submit(key('en-fr'), items('b'), { deadline: clock.now() + 1000 });
  await clock.advance(10);
  runner.calls[0]!.succeed();
  await flush();
  assert.equal(batcher.depth(), 0);
  assert.equal(clock.pendingTimers, 0);
});

test('works on the real clock and timers', async () => {
  const batcher = new Batcher<QueueKey, Item, string>({
    run: async ({ pair }, batch) => batch.map((item) => `${pair}:${String(item.payload)}`),
    maxDelayMs: 5,
  });
  // Only the maxDelay timer can dispatch this; without it the test would end unresolved.
  assert.deepEqual(await batcher.submit(key('en-de'), items('a')), ['en-de:a']);
});

test('a batch holds one key: keys of one pair queue apart and run in separate batches', async () => {
  const { clock, runner, batcher } = setup({ lanesOf: () => [0], batchesPerLane: 2 });
  const beam = track(batcher.submit(key('en-de', 'en-de beam 4'), items('b1', 'b2')));
  const greedy = track(batcher.submit(key('en-de'), items('g1')));
  void batcher.submit(key('en-de', 'en-de beam 4'), items('b3'));
  assert.deepEqual(batcher.stats().queuedSentences, { 'en-de': 4 });
  await clock.advance(10);
  assert.deepEqual(
    runner.calls.map((call) => [call.pair, payloadsOf(call)]),
    [['en-de', ['b1', 'b2', 'b3']], ['en-de', ['g1']]],
  );
  runner.calls.forEach((call) => call.succeed());
  await flush();
  assert.deepEqual(beam.value, ['en-de:b1', 'en-de:b2']);
  assert.deepEqual(greedy.value, ['en-de:g1']);
});

test('admission counts a pair over all of its keys, and reports that sum as its depth', async () => {
  const rejections: RejectionReason[] = [];
  const depths: [string, number][] = [];
  const { batcher } = setup({
    maxDelayMs: 1000,
    maxQueuedSentences: 16,
    observer: { onRejected: (reason) => rejections.push(reason), onQueueDepth: (pair, depth) => depths.push([pair, depth]) },
  });
  // Every request has options of its own (as distinct max_length values would give it).
  const outcomes = Array.from({ length: 40 }, (_, i) => track(batcher.submit(key('en-de', `en-de max=${i + 1}`), items(...Array.from({ length: 4 }, (_, j) => `${i}.${j}`)))));
  await flush();
  assert.equal(batcher.depth('en-de'), 16);
  assert.equal(outcomes.filter((o) => o.error instanceof QueueFullError).length, 36);
  assert.equal(rejections.length, 36);
  assert.deepEqual(depths.at(-1), ['en-de', 16]);
  // Another pair has a bound of its own.
  void batcher.submit(key('en-fr', 'en-fr max=1'), items('fr'));
  assert.equal(batcher.depth('en-fr'), 1);
  assert.equal(batcher.depth(), 17);
});

test('with batchesPerPair below batchesPerLane, one pair\'s backlog leaves another pair room on a shared lane', async () => {
  const { runner, batcher } = setup({ maxBatchSentences: 1, lanesOf: () => [0], batchesPerLane: 4, batchesPerPair: 2 });
  for (const p of ['a1', 'a2', 'a3', 'a4']) void batcher.submit(key('en-de'), items(p));
  await flush();
  assert.deepEqual(runner.calls.map(payloadsOf), [['a1'], ['a2']], 'en-de takes its two slots, no more');
  const probe = track(batcher.submit(key('en-fr'), items('f1')));
  await flush();
  assert.deepEqual(payloadsOf(runner.calls[2]), ['f1'], 'en-fr runs at once beside the en-de backlog');
  runner.calls[2]!.succeed();
  await flush();
  assert.deepEqual(probe.value, ['en-fr:f1']);
  assert.throws(() => setup({ batchesPerPair: 0 }), /batchesPerPair must be at least 1/);
});

test('abort fails every queued and running request with the given error, and the batcher takes no more', async () => {
  const { runner, batcher } = setup({ maxBatchSentences: 1 });
  const running = track(batcher.submit(key('en-de'), items('r')));
  const queued = track(batcher.submit(key('en-fr'), items('q')));
  await flush();
  assert.equal(runner.calls.length, 1);
  const error = new Error('out of time');
  batcher.abort(error);
  await flush();
  assert.equal(running.error, error);
  assert.equal(queued.error, error);
  assert.ok(runner.calls[0]!.signal.aborted, 'the running batch is aborted, so its worker drops it');
  await assert.rejects(batcher.submit(key('en-de'), items('late')), /draining/);
  runner.calls[0]!.fail(new Error('cancelled by its worker'));
  await batcher.drain();
});

test('a batch holds maxBatchSentences rows: a beam key\'s batches hold fewer sentences', async () => {
  const beamKey = { pair: 'en-de', id: 'en-de beam 4', beam: 4 };
  const { clock, runner, batcher } = setup({ maxBatchSentences: 8, batchesPerLane: 4, rowsPerSentence: (k) => (k as typeof beamKey).beam ?? 1 });
  void batcher.submit(beamKey, items('b1', 'b2', 'b3', 'b4', 'b5'));
  void batcher.submit(key('en-fr'), items('g1', 'g2', 'g3', 'g4', 'g5'));
  await flush();
  assert.deepEqual(runner.calls.map(payloadsOf), [['b1', 'b2'], ['b3', 'b4']], 'full beam batches of 2 sentences x 4 rows dispatch at once');
  await clock.advance(10);
  assert.deepEqual(runner.calls.map(payloadsOf).slice(2), [['b5'], ['g1', 'g2', 'g3', 'g4', 'g5']], 'greedy batches keep up to 8 sentences');
});
