// Continuous batching of an engine worker's jobs: jobs that join running batches, of one pair or
// several, with greedy or beam search, get exactly what each gets alone, and free what they use.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { BeamSearch } from '../../src/models/decoding.ts';
import { Translator } from '../../src/translator/index.ts';
import { JobCancelledError, TranslationScheduler } from '../../src/translator/scheduler.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { randomCheckpoint, randomSources, tinyConfig } from '../helpers/engine.ts';

let translator: Translator;
before(async () => {
  await useTestBackend();
  translator = await Translator.load(await randomCheckpoint(tinyConfig('token', 'target')));
});
after(() => translator.dispose());

const toDe = { source: 'en', target: 'de' };
const toFr = { source: 'en', target: 'fr' };
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

test('jobs joining running batches, of one pair or another, greedy or beam, get what each gets alone', async () => {
  const jobs = [
    { sources: randomSources([9, 4, 6], 1000, 1), dir: toDe, options: {} },
    // 3 + 2 rows exceed maxRows 4: this job waits for a sentence of the first to finish.
    { sources: randomSources([12, 3], 1000, 2), dir: toDe, options: { maxLength: 7 } },
    { sources: randomSources([5, 8], 1000, 3), dir: toFr, options: {} },
    { sources: randomSources([6, 10], 1000, 4), dir: toDe, options: { beamSize: 3, nBest: 2 } },
  ];
  const alone = jobs.map((j) => translator.translateIds(j.sources, j.dir, j.options));
  const baseline = tf.memory().numTensors;
  const scheduler = new TranslationScheduler(4);
  const pending: Promise<unknown>[] = [];
  for (const job of jobs) {
    pending.push(scheduler.translate(translator, job.sources, job.dir, job.options));
    for (let i = 0; i < 3; i++) await nextTurn(); // a few decoder steps before the next job arrives
  }
  assert.deepEqual(await Promise.all(pending), alone);
  assert.equal(tf.memory().numTensors, baseline);
});

test('a job that cannot join is rejected alone, and the running batch goes on', async () => {
  const scheduler = new TranslationScheduler(8);
  const baseline = tf.memory().numTensors;
  const sources = randomSources([5, 7], 1000, 5);
  const running = scheduler.translate(translator, sources, toDe);
  await nextTurn();
  const tooLong = randomSources([translator.model.config.maxLength + 1], 1000, 6);
  await assert.rejects(scheduler.translate(translator, tooLong, toDe), /exceeds maxLength/);
  assert.deepEqual(await running, translator.translateIds(sources, toDe));
  assert.deepEqual(await scheduler.translate(translator, [], toDe), []);
  assert.equal(tf.memory().numTensors, baseline);
});

test('a cancelled job leaves its running batch or the waiting list; the others get what each gets alone', async () => {
  const kept = { sources: randomSources([9, 4], 1000, 7), dir: toDe };
  const running = { sources: randomSources([11, 6, 8], 1000, 8), dir: toDe };
  const waiting = { sources: randomSources([7, 5], 1000, 9), dir: toDe }; // 2 + 5 rows exceed maxRows 6
  const alone = translator.translateIds(kept.sources, kept.dir);
  const baseline = tf.memory().numTensors;
  const scheduler = new TranslationScheduler(6);
  const cancelRunning = new AbortController();
  const cancelWaiting = new AbortController();
  const keptDone = scheduler.translate(translator, kept.sources, kept.dir);
  const runningDone = scheduler.translate(translator, running.sources, running.dir, {}, cancelRunning.signal);
  const waitingDone = scheduler.translate(translator, waiting.sources, waiting.dir, {}, cancelWaiting.signal);
  for (let i = 0; i < 3; i++) await nextTurn();
  cancelRunning.abort();
  cancelWaiting.abort();
  await assert.rejects(runningDone, JobCancelledError);
  await assert.rejects(waitingDone, JobCancelledError);
  assert.deepEqual(await keptDone, alone);
  await assert.rejects(
    scheduler.translate(translator, kept.sources, kept.dir, {}, cancelRunning.signal),
    JobCancelledError,
  );

  const last = new AbortController(); // the only job of its batch: the batch stops and frees its state
  const lastDone = scheduler.translate(translator, running.sources, running.dir, {}, last.signal);
  await nextTurn();
  last.abort();
  await assert.rejects(lastDone, JobCancelledError);
  assert.equal(tf.memory().numTensors, baseline);
});

test('a beam search takes a step per turn: a greedy job that arrives later is not held back, and a cancelled search is freed', async () => {
  const scheduler = new TranslationScheduler(8);
  const baseline = tf.memory().numTensors;
  const long = { sources: randomSources([12, 9], 1000, 10), options: { beamSize: 4, maxLength: 30 } };
  const short = { sources: randomSources([5], 1000, 11), options: { maxLength: 2 } };
  const order: string[] = [];
  const beamDone = scheduler
    .translate(translator, long.sources, toDe, long.options)
    .then((r) => (order.push('beam'), r));
  await nextTurn();
  const greedyDone = scheduler
    .translate(translator, short.sources, toFr, short.options)
    .then((r) => (order.push('greedy'), r));
  assert.deepEqual(await Promise.all([beamDone, greedyDone]), [
    translator.translateIds(long.sources, toDe, long.options),
    translator.translateIds(short.sources, toFr, short.options),
  ]);
  assert.deepEqual(order, ['greedy', 'beam']);

  const cancel = new AbortController();
  const cancelled = scheduler.translate(translator, long.sources, toDe, long.options, cancel.signal);
  for (let i = 0; i < 3; i++) await nextTurn();
  cancel.abort();
  await assert.rejects(cancelled, JobCancelledError);
  assert.equal(tf.memory().numTensors, baseline);
});

test("engine time is shared fairly between pairs: a heavy beam request of one pair holds another pair's short request back by at most one step", async () => {
  const scheduler = new TranslationScheduler(8);
  const baseline = tf.memory().numTensors;
  // Three beam batches of en-de, 3 sentences x beam 4 = 12 rows each, decoding 30 steps.
  const heavy = [12, 13, 14].map((seed) => ({
    sources: randomSources([10, 11, 12], 1000, seed),
    options: { beamSize: 4, maxLength: 30 },
  }));
  const probe = { sources: randomSources([6], 1000, 15), options: { maxLength: 6 } };
  let beamSteps = 0;
  const step = BeamSearch.prototype.step;
  BeamSearch.prototype.step = function (this: BeamSearch) {
    beamSteps++;
    return step.call(this);
  };
  try {
    const heavyDone = heavy.map((h) => scheduler.translate(translator, h.sources, toDe, h.options));
    for (let i = 0; i < 4; i++) await nextTurn();
    const before = beamSteps;
    assert.ok(before > 0, 'the heavy request is decoding');
    const probeResult = await scheduler.translate(translator, probe.sources, toFr, probe.options);
    const heavyStepsMeanwhile = beamSteps - before;
    // Before, every running batch stepped once per turn: 3 heavy steps per probe step (about 18 here).
    // A starting pair gets a heavy step's rows (12) of credit: the probe's 6 steps (1 row each) run before the next heavy step.
    assert.ok(heavyStepsMeanwhile <= 1, `${heavyStepsMeanwhile} heavy steps while a 6-step probe of another pair ran`);
    assert.deepEqual(probeResult, translator.translateIds(probe.sources, toFr, probe.options));
    assert.deepEqual(
      await Promise.all(heavyDone),
      heavy.map((h) => translator.translateIds(h.sources, toDe, h.options)),
    );
  } finally {
    BeamSearch.prototype.step = step;
  }
  assert.equal(tf.memory().numTensors, baseline);
});
