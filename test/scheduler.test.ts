// Continuous batching of an engine worker's jobs: jobs that join running batches, of one pair or
// several, with greedy or beam search, get exactly what each gets alone, and free what they use.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Translator } from '../src/translator/index.ts';
import { TranslationScheduler } from '../src/translator/scheduler.ts';
import { useTestBackend } from './helpers/backend.ts';
import { randomCheckpoint, randomSources, tinyConfig } from './helpers/engine.ts';

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
