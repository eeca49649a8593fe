import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { readCorpus } from '../../src/data/corpus.ts';
import { CheckpointReader } from '../../src/models/checkpoint.ts';
import { Tokenizer } from '../../src/tokenizer/index.ts';
import { parseTrainConfig } from '../../src/train/config.ts';
import { type Example, tokenizeCorpus } from '../../src/train/data.ts';
import { latestCheckpoint, ParallelTrainer, train, Trainer } from '../../src/train/index.ts';
import { splitBatch } from '../../src/train/parallel.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { setUpTraining } from '../helpers/train.ts';
import { maxRelativeError, tempDir } from '../helpers/engine.ts';

before(useTestBackend);

// The load-balancing loss is taken per shard with several workers, so the exact comparisons leave
// it out. Adam divides each gradient component by its own RMS, so with epsilon 1e-9 a component
// that is nearly zero moves its weight by up to the learning rate in a direction set by float32
// rounding (sums taken in another order); epsilon 1e-6 keeps such components from moving at all.
const EXACT = { balanceWeight: 0, epsilon: 1e-6 };
const TOLERANCE = 1e-4;

async function trainerFor(config: string, data: string): Promise<Trainer> {
  const { model, train: settings } = parseTrainConfig(
    JSON.parse(fs.readFileSync(config, 'utf8')),
    path.dirname(config),
  );
  const tokenizer = await Tokenizer.load(settings.tokenizer);
  return Trainer.create(
    model,
    settings,
    tokenizer,
    tokenizeCorpus(await readCorpus(data), tokenizer, model.pairs, model.maxLength),
  );
}

function relative(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
}

async function checkpointWeights(out: string): Promise<Map<string, tf.Tensor>> {
  const reader = await CheckpointReader.open(path.join(latestCheckpoint(out), 'model'));
  return reader.read(reader.shapes.keys());
}

test('splitBatch deals examples into shards of about equal token counts', () => {
  const dir = { source: 'en', target: 'de' };
  const example = (n: number): Example => ({
    dir,
    source: new Array<number>(n).fill(5),
    target: new Array<number>(n).fill(6),
  });
  const batch = [10, 9, 9, 8, 8, 8, 7].map(example);
  const shards = splitBatch(batch, 2);
  assert.equal(shards.flat().length, batch.length);
  assert.ok(batch.every((e) => shards.flat().includes(e)));
  const tokens = shards.map((s) => s.reduce((n, e) => n + e.source.length + e.target.length, 0));
  assert.ok(Math.abs(tokens[0] - tokens[1]) <= 20, `unbalanced shards: ${tokens}`);
  assert.deepEqual(
    splitBatch(batch.slice(0, 1), 3).map((s) => s.length),
    [1, 0, 0],
  );
});

test('two workers take the same steps as one thread: losses and weights', { timeout: 120_000 }, async () => {
  const { config, data } = setUpTraining(EXACT);
  const single = await trainerFor(config, data);
  const coordinator = await trainerFor(config, data);
  const parallel = await ParallelTrainer.start(coordinator, 2);
  try {
    const initial = new Map([...single.variables].map(([name, v]) => [name, v.dataSync<'float32'>().slice()]));
    let unevenShards = 0;
    for (let step = 1; step <= 4; step++) {
      const batch = single.sampler.next();
      assert.deepEqual(coordinator.sampler.next(), batch, 'both samplers draw the same batches');
      const targets = splitBatch(batch, 2).map((s) => s.reduce((n, e) => n + e.target.length, 0));
      if (targets[0] !== targets[1]) unevenShards++;
      const a = single.trainOn(batch);
      const before = tf.memory().numTensors;
      const b = await parallel.trainOn(batch);
      assert.equal(tf.memory().numTensors, before, 'a parallel step leaks no tensors on the calling thread');
      assert.equal(b.step, step);
      assert.equal(b.tokens, a.tokens);
      for (const key of ['loss', 'crossEntropy', 'gradNorm', 'lr'] as const) {
        assert.ok(
          relative(b[key], a[key]) < TOLERANCE,
          `step ${step} ${key}: ${b[key]} with 2 workers, ${a[key]} with 1`,
        );
      }
    }
    // An unweighted mean of the shards' gradients would differ when their target token counts do.
    assert.ok(unevenShards > 0, 'every batch split evenly, so the token weighting went untested');
    let moved = 0;
    for (const [name, v] of single.variables) {
      const w = v.dataSync<'float32'>();
      const err = maxRelativeError(coordinator.variables.get(name)!.dataSync<'float32'>(), w);
      assert.ok(err < TOLERANCE, `${name}: relative difference ${err}`);
      moved = Math.max(moved, maxRelativeError(initial.get(name)!, w));
    }
    assert.ok(moved > 100 * TOLERANCE, `weights hardly moved (${moved}), so the comparison could not fail`);
  } finally {
    await parallel.close();
    single.dispose();
    coordinator.dispose();
  }
});

test('with the load-balancing loss, two workers stay close to one thread', { timeout: 120_000 }, async () => {
  const { config, data } = setUpTraining();
  const single = await train({ config, data, out: tempDir(), steps: 3, log: () => {} });
  const lines: string[] = [];
  const parallel = await train({ config, data, out: tempDir(), steps: 3, workers: 2, log: (l) => lines.push(l) });
  assert.ok(lines.includes('taskmoe train: 2 worker threads, data parallel'), lines.join('\n'));
  single.steps.forEach((a, i) => {
    const b = parallel.steps[i];
    assert.ok(
      relative(b.crossEntropy, a.crossEntropy) < 1e-3,
      `step ${a.step}: ce ${b.crossEntropy} vs ${a.crossEntropy}`,
    );
    assert.ok(
      b.balance > 0 && Math.abs(b.balance - a.balance) < 0.5,
      `step ${a.step}: balance ${b.balance} vs ${a.balance}`,
    );
  });
});

test('a run resumes across worker counts exactly where an uninterrupted one is', { timeout: 180_000 }, async () => {
  const uninterrupted = setUpTraining(EXACT);
  const full = await train({ ...uninterrupted, steps: 6, log: () => {} });
  const expected = await checkpointWeights(uninterrupted.out);
  for (const [first, second] of [
    [2, 1],
    [1, 2],
  ]) {
    const interrupted = setUpTraining(EXACT);
    await train({ ...interrupted, steps: 4, workers: first, log: () => {} });
    const resumed = await train({ ...interrupted, steps: 6, resume: true, workers: second, log: () => {} });
    assert.deepEqual(
      resumed.steps.map((s) => s.step),
      [5, 6],
    );
    resumed.steps.forEach((s, i) => {
      const want = full.steps[4 + i].loss;
      assert.ok(
        relative(s.loss, want) < TOLERANCE,
        `${first} then ${second} workers, step ${s.step}: loss ${s.loss}, uninterrupted ${want}`,
      );
    });
    const got = await checkpointWeights(interrupted.out);
    for (const [name, t] of expected) {
      const err = maxRelativeError(got.get(name)!.dataSync<'float32'>(), t.dataSync<'float32'>());
      assert.ok(err < TOLERANCE, `${first} then ${second} workers, ${name}: relative difference ${err}`);
    }
    tf.dispose([...got.values()]);
  }
  tf.dispose([...expected.values()]);
});

test(
  'a worker whose shard fails rejects the step with its error instead of hanging',
  { timeout: 120_000 },
  async () => {
    const { config, data } = setUpTraining(EXACT);
    const trainer = await trainerFor(config, data);
    const parallel = await ParallelTrainer.start(trainer, 2);
    try {
      const good = trainer.sampler.next();
      await parallel.trainOn(good);
      // Longer than maxLength (24): the embedding throws in whichever worker gets it.
      const tooLong: Example = { ...good[0], source: new Array<number>(30).fill(5) };
      await assert.rejects(
        parallel.trainOn([tooLong, ...good]),
        /^Error: train worker \d failed: .*exceeds maxLength 24/,
      );
      // The failed worker is gone; later steps fail at once rather than wait for it.
      await assert.rejects(parallel.trainOn(good), /train worker \d/);
      assert.equal(trainer.step, 1, 'the failed step applied no update');
    } finally {
      await parallel.close();
      trainer.dispose();
    }
  },
);

test('workers must be a positive integer in the config', () => {
  const { config } = setUpTraining({ workers: 1.5 });
  assert.throws(
    () => parseTrainConfig(JSON.parse(fs.readFileSync(config, 'utf8')), path.dirname(config)),
    /"train.workers" must be a positive integer/,
  );
});
