// The batcher dispatches: batch limits, delay, lanes and their loads, keys; results go back in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QueueFullError, type DispatchedBatch, type RejectionReason } from '../../src/batching/index.ts';
import { flush, items, key, payloadsOf, setup, track } from '../helpers/batcher.ts';

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

test("a pair on several lanes: each batch goes to the least-loaded free lane, counting every pair's running sentences", async () => {
  const lanes: Record<string, number[]> = { 'en-de': [0], 'en-fr': [0, 1] };
  const { runner, batcher } = setup({
    maxBatchSentences: 3,
    maxDelayMs: 0,
    batchesPerLane: 2,
    lanesOf: (pair) => lanes[pair],
  });
  void batcher.submit(key('en-de'), items('d1', 'd2', 'd3'));
  await flush();
  void batcher.submit(key('en-fr'), items('f1'));
  await flush();
  // Lane 0 runs three sentences of en-de: en-fr's first batch goes to the idle lane 1.
  assert.deepEqual(
    runner.calls.map((c) => [c.pair, c.lane]),
    [
      ['en-de', 0],
      ['en-fr', 1],
    ],
  );
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
  assert.deepEqual(runner.calls.map(payloadsOf), [
    ['a1', 'a2'],
    ['b1', 'b2'],
  ]);
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

test('a batch holds one key: keys of one pair queue apart and run in separate batches', async () => {
  const { clock, runner, batcher } = setup({ lanesOf: () => [0], batchesPerLane: 2 });
  const beam = track(batcher.submit(key('en-de', 'en-de beam 4'), items('b1', 'b2')));
  const greedy = track(batcher.submit(key('en-de'), items('g1')));
  void batcher.submit(key('en-de', 'en-de beam 4'), items('b3'));
  assert.deepEqual(batcher.stats().queuedSentences, { 'en-de': 4 });
  await clock.advance(10);
  assert.deepEqual(
    runner.calls.map((call) => [call.pair, payloadsOf(call)]),
    [
      ['en-de', ['b1', 'b2', 'b3']],
      ['en-de', ['g1']],
    ],
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
    observer: {
      onRejected: (reason) => rejections.push(reason),
      onQueueDepth: (pair, depth) => depths.push([pair, depth]),
    },
  });
  // Every request has options of its own (as distinct max_length values would give it).
  const outcomes = Array.from({ length: 40 }, (_, i) =>
    track(
      batcher.submit(key('en-de', `en-de max=${i + 1}`), items(...Array.from({ length: 4 }, (_, j) => `${i}.${j}`))),
    ),
  );
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

test("with batchesPerPair below batchesPerLane, one pair's backlog leaves another pair room on a shared lane", async () => {
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

test("a batch holds maxBatchSentences rows: a beam key's batches hold fewer sentences", async () => {
  const beamKey = { pair: 'en-de', id: 'en-de beam 4', beam: 4 };
  const { clock, runner, batcher } = setup({
    maxBatchSentences: 8,
    batchesPerLane: 4,
    rowsPerSentence: (k) => (k as typeof beamKey).beam ?? 1,
  });
  void batcher.submit(beamKey, items('b1', 'b2', 'b3', 'b4', 'b5'));
  void batcher.submit(key('en-fr'), items('g1', 'g2', 'g3', 'g4', 'g5'));
  await flush();
  assert.deepEqual(
    runner.calls.map(payloadsOf),
    [
      ['b1', 'b2'],
      ['b3', 'b4'],
    ],
    'full beam batches of 2 sentences x 4 rows dispatch at once',
  );
  await clock.advance(10);
  assert.deepEqual(
    runner.calls.map(payloadsOf).slice(2),
    [['b5'], ['g1', 'g2', 'g3', 'g4', 'g5']],
    'greedy batches keep up to 8 sentences',
  );
});
