// The batcher refuses and gives up cleanly: a full queue, deadlines, cancellation, failed batches, drain and abort.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Batcher,
  CancelledError,
  DeadlineError,
  DrainingError,
  QueueFullError,
  type FinishedBatch,
  type QueueKey,
  type RejectionReason,
} from '../../src/batching/index.ts';
import { FakeClock, type Item, flush, items, key, payloadsOf, setup, track } from '../helpers/batcher.ts';

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
