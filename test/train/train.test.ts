import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { readCorpus } from '../../src/data/corpus.ts';
import { evaluate } from '../../src/eval/evaluate.ts';
import { corpusBleu } from '../../src/eval/bleu-chrf.ts';
import { CheckpointReader } from '../../src/models/checkpoint.ts';
import { Tokenizer } from '../../src/tokenizer/index.ts';
import { parseTrainConfig } from '../../src/train/config.ts';
import { tokenizeCorpus } from '../../src/train/data.ts';
import { latestCheckpoint, readTrainConfig, snapshotCheckpoint, train, Trainer } from '../../src/train/index.ts';
import { learningRate } from '../../src/train/optimizer.ts';
import { averageCheckpoints } from '../../src/models/average.ts';
import { loadBalancingLoss } from '../../src/train/loss.ts';
import { Translator } from '../../src/translator/index.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { ENGLISH, GERMAN, setUpTraining } from '../helpers/train.ts';

before(useTestBackend);

test('the load-balancing loss is 1 for uniform routing, E for collapsed routing, and ignores padding rows', () => {
  const experts = 4;
  const uniform = tf.fill([8, experts], 1 / experts) as tf.Tensor2D;
  const top1Spread = Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3]);
  assert.ok(Math.abs(loadBalancingLoss(uniform, top1Spread).dataSync()[0] - 1) < 1e-6);
  const collapsed = tf.tensor2d(Array.from({ length: 8 }, () => [1, 0, 0, 0])) as tf.Tensor2D;
  assert.ok(Math.abs(loadBalancingLoss(collapsed, new Int32Array(8)).dataSync()[0] - experts) < 1e-6);
  // Rows 0-3 are padding: had they counted, f_0 would be 5/8 and the loss would exceed 1.
  const top1WithPadding = Int32Array.from([-1, -1, -1, -1, 0, 1, 2, 3]);
  const probsWithPadding = tf.concat([
    collapsed.slice([0, 0], [4, experts]),
    uniform.slice([0, 0], [4, experts]),
  ]) as tf.Tensor2D;
  assert.ok(Math.abs(loadBalancingLoss(probsWithPadding, top1WithPadding).dataSync()[0] - 1) < 1e-6);
  tf.dispose([uniform, collapsed, probsWithPadding]);
});

test('training lowers the loss over 30 steps and writes a checkpoint a Translator can load', async () => {
  const { config, data, out } = setUpTraining({ devDir: 'data', evalEvery: 30, devDecodeSentences: 2 });
  const lines: string[] = [];
  const result = await train({ config, data, out, steps: 30, log: (l) => lines.push(l) });
  assert.equal(result.step, 30);
  const ce = result.steps.map((s) => s.crossEntropy);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(
    mean(ce.slice(-5)) < mean(ce.slice(0, 5)) - 1,
    `cross-entropy went from ${mean(ce.slice(0, 5))} to ${mean(ce.slice(-5))}`,
  );
  assert.ok(result.steps.every((s) => s.balance > 0 && Number.isFinite(s.gradNorm)));
  assert.equal(result.dev.length, 1);
  assert.ok(result.dev[0].loss < ce[0], 'dev loss (on the training sentences) should be below the initial loss');
  assert.ok(
    lines.some((l) => /^step 30\/30 loss .* tok\/s ETA/.test(l)),
    'no progress line',
  );
  const translator = await Translator.load(path.join(latestCheckpoint(out), 'model'));
  assert.equal(translator.translate(['Open the file'], { source: 'en', target: 'de' }).length, 1);
  translator.dispose();
  const json = path.join(out, 'eval.json');
  const scores = await evaluate({ model: path.join(latestCheckpoint(out), 'model'), data, json, log: () => {} });
  assert.deepEqual(
    scores.directions.map((d) => d.direction),
    ['en-de', 'de-en', 'en-fr', 'fr-en'],
  );
  // Copying English into German shares almost nothing; the scores are sacreBLEU's on the copied text.
  assert.equal(scores.directions[0].copyBleu, corpusBleu(ENGLISH, GERMAN).score);
  assert.deepEqual(JSON.parse(fs.readFileSync(json, 'utf8')), scores);
});

test('a run started from a model checkpoint (--init) continues from its weights and learning-rate schedule', async () => {
  const first = setUpTraining();
  const trained = await train({ ...first, steps: 20, log: () => {} });
  const model = path.join(latestCheckpoint(first.out), 'model');
  const scratch = await train({ ...setUpTraining(), steps: 1, log: () => {} });
  const continued = await train({ ...setUpTraining(), steps: 22, init: { model, step: 20 }, log: () => {} });
  assert.deepEqual(
    continued.steps.map((s) => s.step),
    [21, 22],
  );
  const lastTrained = trained.steps.slice(-5).map((s) => s.crossEntropy);
  assert.ok(
    continued.steps[0].crossEntropy < scratch.steps[0].crossEntropy - 1,
    `${continued.steps[0].crossEntropy} from the trained weights, ${scratch.steps[0].crossEntropy} from scratch`,
  );
  assert.ok(
    continued.steps[0].crossEntropy <= Math.max(...lastTrained) + 0.5,
    `${continued.steps[0].crossEntropy} against the trained run's last ${lastTrained.join(', ')}`,
  );
  const { peakLr, warmupSteps } = readTrainConfig(first.config).train;
  assert.equal(continued.steps[0].lr, learningRate(21, peakLr, warmupSteps));
  const other = setUpTraining({}, { maxLength: 32 });
  await assert.rejects(
    train({ ...other, steps: 22, init: { model, step: 20 }, log: () => {} }),
    /out\/latest\/model has a different model config than .*train\.json/,
  );
});

test("with cooldownSteps the learning rate falls linearly towards zero over the run's last steps", async () => {
  const setup = setUpTraining({ cooldownSteps: 4 });
  const run = await train({ ...setup, steps: 8, log: () => {} });
  const { peakLr, warmupSteps } = readTrainConfig(setup.config).train;
  const ratios = run.steps.map((s) => s.lr / learningRate(s.step, peakLr, warmupSteps));
  ratios.forEach((r, i) =>
    assert.ok(Math.abs(r - [1, 1, 1, 1, 1, 0.75, 0.5, 0.25][i]) < 1e-9, `step ${i + 1}: ${r} of the schedule`),
  );
});

test("stopAt ends a run early on the full run's schedule, and resuming without it finishes that run exactly", async () => {
  const full = await train({ ...setUpTraining({ cooldownSteps: 4 }), steps: 6, log: () => {} });
  const cut = setUpTraining({ cooldownSteps: 4, stopAt: 4 });
  const first = await train({ ...cut, steps: 6, log: () => {} });
  assert.deepEqual(
    first.steps.map((s) => s.step),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    first.steps.map((s) => s.lr),
    full.steps.slice(0, 4).map((s) => s.lr),
  );
  const rest = setUpTraining({ cooldownSteps: 4 });
  fs.cpSync(cut.out, rest.out, { recursive: true });
  const resumed = await train({ ...rest, steps: 6, resume: true, log: () => {} });
  assert.deepEqual(
    resumed.steps.map((s) => s.loss),
    full.steps.slice(4).map((s) => s.loss),
  );
});

test('a run resumed from a checkpoint takes exactly the step an uninterrupted run takes', async () => {
  const uninterrupted = setUpTraining();
  const full = await train({ ...uninterrupted, steps: 6, log: () => {} });
  const interrupted = setUpTraining();
  await train({ ...interrupted, steps: 4, log: () => {} });
  const resumed = await train({ ...interrupted, steps: 6, resume: true, log: () => {} });
  assert.deepEqual(
    resumed.steps.map((s) => s.step),
    [5, 6],
  );
  assert.deepEqual(
    resumed.steps.map((s) => s.loss),
    full.steps.slice(4).map((s) => s.loss),
  );
  const a = await CheckpointReader.open(path.join(latestCheckpoint(uninterrupted.out), 'model'));
  const b = await CheckpointReader.open(path.join(latestCheckpoint(interrupted.out), 'model'));
  const [wa, wb] = [await a.read(a.shapes.keys()), await b.read(b.shapes.keys())];
  for (const [name, t] of wa) assert.deepEqual(t.dataSync(), wb.get(name)!.dataSync(), `${name} differs`);
  tf.dispose([...wa.values(), ...wb.values()]);
  // And the weights did change between the two saves, so the comparison above can fail.
  const stepFour = setUpTraining();
  await train({ ...stepFour, steps: 4, log: () => {} });
  const c = await CheckpointReader.open(path.join(latestCheckpoint(stepFour.out), 'model'));
  const [embedFull, embedFour] = [(await a.read(['embed'])).get('embed')!, (await c.read(['embed'])).get('embed')!];
  assert.notDeepEqual(embedFull.dataSync(), embedFour.dataSync());
  tf.dispose([embedFull, embedFour]);
});

test('snapshots are taken every snapshotEvery steps, and averaging them gives the element-wise mean', async () => {
  const run = setUpTraining({ snapshotEvery: 2 });
  await train({ ...run, steps: 4, log: () => {} });
  assert.deepEqual(fs.readdirSync(path.join(run.out, 'snapshots')).sort(), ['step-2', 'step-4']);
  const read = async (dir: string) => {
    const reader = await CheckpointReader.open(dir);
    return reader.read(reader.shapes.keys());
  };
  const [two, four, latest] = [
    await read(snapshotCheckpoint(run.out, 2)),
    await read(snapshotCheckpoint(run.out, 4)),
    await read(path.join(latestCheckpoint(run.out), 'model')),
  ];
  assert.deepEqual(
    four.get('embed')!.dataSync(),
    latest.get('embed')!.dataSync(),
    'the step-4 snapshot is the step-4 model',
  );
  assert.notDeepEqual(two.get('embed')!.dataSync(), four.get('embed')!.dataSync());

  const tensorsBefore = tf.memory().numTensors;
  const averaged = path.join(run.out, 'averaged');
  await averageCheckpoints([snapshotCheckpoint(run.out, 2), snapshotCheckpoint(run.out, 4)], averaged);
  assert.equal(tf.memory().numTensors, tensorsBefore);
  const mean = await read(averaged);
  for (const [name, t] of mean) {
    const [a, b, m] = [two.get(name)!.dataSync(), four.get(name)!.dataSync(), t.dataSync()];
    for (let i = 0; i < m.length; i++)
      assert.ok(
        Math.abs(m[i]! - (a[i]! + b[i]!) / 2) < 1e-6,
        `${name}[${i}]: ${m[i]} is not the mean of ${a[i]} and ${b[i]}`,
      );
  }
  await Translator.load(averaged).then((t) => t.dispose());

  const other = setUpTraining({ snapshotEvery: 2 }, { dFF: 40 });
  await train({ ...other, steps: 2, log: () => {} });
  await assert.rejects(
    averageCheckpoints([snapshotCheckpoint(run.out, 2), snapshotCheckpoint(other.out, 2)], path.join(run.out, 'bad')),
    /model configs differ/,
  );
  tf.dispose([...two.values(), ...four.values(), ...latest.values(), ...mean.values()]);
});

test('a training step frees every tensor it creates', async () => {
  const { config, data } = setUpTraining();
  const { model, train: settings } = parseTrainConfig(
    JSON.parse(fs.readFileSync(config, 'utf8')),
    path.dirname(config),
  );
  const tokenizer = await Tokenizer.load(settings.tokenizer);
  const examples = tokenizeCorpus(await readCorpus(data), tokenizer, model.pairs, model.maxLength);
  const trainer = Trainer.create(model, settings, tokenizer, examples);
  trainer.trainStep();
  const baseline = tf.memory().numTensors;
  trainer.trainStep();
  trainer.trainStep();
  assert.equal(tf.memory().numTensors, baseline);
  trainer.dispose();
});
