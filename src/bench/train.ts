// Training throughput on random data: tokens/s and achieved FLOP/s of the trainer, against the
// FLOP/s of a plain 2-D matMul (the best the backend does) measured in the same process; with
// --workers N, also the data-parallel trainer with N worker threads on the same batches.
// Run: taskmoe bench train [--steps N] [--batch-tokens N] [--vocab N] [--d-model N] [--workers N]
import * as tf from '@tensorflow/tfjs';
import { type ModelConfig, isMoeLayer, numLayers } from '../models/config.ts';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../tokenizer/index.ts';
import { TRAIN_DEFAULTS, readTrainConfig } from '../train/config.ts';
import type { Example } from '../train/data.ts';
import { ParallelTrainer } from '../train/parallel.ts';
import { type StepStats, Trainer } from '../train/trainer.ts';
import { mulberry32 } from '../util/random.ts';
import { median } from './stats.ts';

// The test fixture's vocabulary; the benchmark's own vocabulary size is simulated on top of it.
const TOKENIZER = fileURLToPath(new URL('../../test/fixtures/spm/tiny.model', import.meta.url));

const LANGUAGES = ['en', 'de', 'fr', 'ru', 'ja', 'zh'];

/** The model of the brief: d 256, 4 heads, dFF 1024, 3+3 layers, 8 experts every 2nd layer, token/target routing. */
const BENCH_MODEL: ModelConfig = {
  vocabSize: 1000, // replaced by the fixture tokenizer's ids spread over 8000 below
  dModel: 256,
  numHeads: 4,
  dFF: 1024,
  encoderLayers: 3,
  decoderLayers: 3,
  moe: { numExperts: 8, topK: 2, every: 2 },
  routing: { encoder: 'token', decoder: 'target' },
  languages: LANGUAGES,
  pairs: LANGUAGES.slice(1).flatMap((l) => [`en-${l}`, `${l}-en`]),
  maxLength: 64,
  tokenizer: 'tokenizer.model',
};

// config, batch -> FLOPs of one training step's matMuls (forward x3 for forward + both backward
// products); the output projection runs on the real target tokens only, the layers on padded rows
export function trainingFlops(cfg: ModelConfig, batch: Example[]): number {
  const { dModel: d, dFF, vocabSize: v } = cfg;
  const b = batch.length;
  const s = Math.max(...batch.map((e) => e.source.length));
  const t = Math.max(...batch.map((e) => e.target.length));
  const ffn = (c: 'encoder' | 'decoder', i: number) =>
    isMoeLayer(cfg, c, i) ? cfg.moe.topK * 2 * d * dFF + d * cfg.moe.numExperts : 2 * d * dFF;
  let macs = 0;
  for (let i = 0; i < numLayers(cfg, 'encoder'); i++) macs += b * s * (4 * d * d + 2 * s * d + ffn('encoder', i));
  for (let i = 0; i < numLayers(cfg, 'decoder'); i++) {
    macs += b * t * (4 * d * d + 2 * t * d + 2 * d * d + 2 * s * d + ffn('decoder', i)) + b * s * 2 * d * d;
  }
  macs += batch.reduce((n, e) => n + e.target.length, 0) * d * v;
  return 3 * 2 * macs;
}

// -> FLOP/s of [rows, k] x [k, m] untransposed matMuls
function matMulCeiling(rows: number, k: number, m: number, reps: number): number {
  const a = tf.randomNormal([rows, k]) as tf.Tensor2D;
  const w = tf.randomNormal([k, m]) as tf.Tensor2D;
  // The braces matter: a tidy that returns the product's Float32Array walks its million elements
  // looking for tensors to keep, which took 40x longer than the matMul itself.
  const product = () =>
    tf.tidy(() => {
      tf.matMul(a, w).dataSync();
    });
  product();
  const start = performance.now();
  for (let r = 0; r < reps; r++) product();
  const seconds = (performance.now() - start) / 1000;
  tf.dispose([a, w]);
  return (reps * 2 * rows * k * m) / seconds;
}

// n, rng -> random examples of realistic lengths (8-30 pieces, within maxLength) over all directions
function randomExamples(cfg: ModelConfig, n: number, tagOf: (lang: string) => number): Map<string, Example[]> {
  const rand = mulberry32(12345);
  const ids = (len: number) => Array.from({ length: len }, () => 4 + Math.floor(rand() * (cfg.vocabSize - 4)));
  return new Map(
    cfg.pairs.map((p) => {
      const [source, target] = p.split('-');
      return [
        p,
        Array.from({ length: n }, () => {
          // Within the model's maxLength: the tag and EOS on the source side, EOS on the target side.
          const len = Math.min(8 + Math.floor(rand() * 22), cfg.maxLength - 2);
          const targetLen = Math.min(Math.round(len * (0.8 + 0.4 * rand())), cfg.maxLength - 1);
          return { dir: { source, target }, source: [tagOf(target), ...ids(len), 3], target: [...ids(targetLen), 3] };
        }),
      ];
    }),
  );
}

// Times one step per batch after a first, untimed one (kernel compilation and allocation).
async function timeSteps(
  batches: Example[][],
  step: (batch: Example[]) => StepStats | Promise<StepStats>,
): Promise<{ stats: StepStats[]; seconds: number[] }> {
  await step(batches[0]);
  const stats: StepStats[] = [];
  const seconds: number[] = [];
  for (const batch of batches.slice(1)) {
    const start = performance.now();
    stats.push(await step(batch));
    seconds.push((performance.now() - start) / 1000);
  }
  return { stats, seconds };
}

export interface TrainBenchOptions {
  /** Timed steps (after one warm-up step). Default 4. */
  steps?: number;
  /** Token budget of a batch. Default 2048, or the training config's batchTokens. */
  batchTokens?: number;
  /** Vocabulary size simulated on top of the fixture tokenizer. Default 8000, or the config's. */
  vocab?: number;
  /** dModel (dFF is 4x). Default 256, or the config's dModel and dFF. */
  dModel?: number;
  /** With N > 1, the data-parallel trainer is timed on the same batches too. Default 1. */
  workers?: number;
  /** A training config (models/demo-train.json): its model shape and batch size, on the benchmark's languages. */
  config?: string;
  /** Print nothing (the caller reports the result). */
  quiet?: boolean;
  /** Also profile one more step by kernel (tf.profile) and print where its time went. */
  profile?: boolean;
}

/** One trainer timed: medians over the timed steps. */
export interface TrainRun {
  workers: number;
  tokensPerSecond: number;
  secondsPerStep: number;
  /** Achieved FLOP/s of the training step's matMuls. */
  flops: number;
}

export interface TrainBenchResult {
  backend: string;
  dModel: number;
  batchTokens: number;
  steps: number;
  /** FLOP/s of a plain 2-D matMul in the same process: the ceiling the runs are measured against. */
  ceiling: number;
  runs: TrainRun[];
  /** Largest cross-entropy difference between the 1-worker and N-worker runs on the same batches. */
  crossEntropyGap?: number;
}

// The benchmark's model: BENCH_MODEL, or a training config's shape on BENCH_MODEL's languages
// (the fixture tokenizer has their tags), with the option flags on top.
function benchSetup(opts: TrainBenchOptions): { cfg: ModelConfig; batchTokens: number } {
  const base = opts.config === undefined ? undefined : readTrainConfig(opts.config);
  const model =
    base === undefined ? BENCH_MODEL : { ...base.model, languages: BENCH_MODEL.languages, pairs: BENCH_MODEL.pairs };
  const dModel = opts.dModel ?? model.dModel;
  const dFF = opts.dModel !== undefined || base === undefined ? 4 * dModel : model.dFF;
  const cfg: ModelConfig = { ...model, vocabSize: opts.vocab ?? base?.model.vocabSize ?? 8000, dModel, dFF };
  return { cfg, batchTokens: opts.batchTokens ?? base?.train.batchTokens ?? 2048 };
}

/** Uses the backend already initialised (the CLI's). */
export async function benchTrain(opts: TrainBenchOptions = {}): Promise<TrainBenchResult> {
  const steps = opts.steps ?? 4;
  const workers = opts.workers ?? 1;
  const print = opts.quiet ? () => {} : (line: string) => console.log(line);
  const tokenizer = await Tokenizer.load(TOKENIZER);
  // The fixture tokenizer has 1000 pieces; the trainer only needs its special ids, so the model's vocabulary can be larger.
  const { cfg, batchTokens: budget } = benchSetup(opts);
  const settings = { ...TRAIN_DEFAULTS, batchTokens: budget };
  const examples = randomExamples(cfg, 500, (l) => tokenizer.languageTagId(l));
  const trainer = Trainer.create(cfg, settings, tokenizer, examples);
  const batches = Array.from({ length: steps + 1 }, () => trainer.sampler.next());
  const flopsOf = batches.slice(1).map((batch) => trainingFlops(cfg, batch));
  const single = await timeSteps(batches, (batch) => trainer.trainOn(batch));
  single.stats.forEach((stats, i) =>
    print(
      `step ${stats.step}: ${batches[i + 1].length} sentences, ${stats.tokens} tokens, loss ${stats.loss.toFixed(3)}, ${single.seconds[i].toFixed(2)} s`,
    ),
  );
  if (opts.profile) {
    const { formatProfile, profileStep } = await import('./train-profile.ts');
    for (const line of formatProfile(await profileStep(() => trainer.trainOn(batches[1])))) print(line);
  }
  trainer.dispose();
  const summary = (run: typeof single, n: number): TrainRun => ({
    workers: n,
    tokensPerSecond: median(run.stats.map((s, i) => s.tokens / run.seconds[i])),
    secondsPerStep: median(run.seconds),
    flops: median(run.seconds.map((t, i) => flopsOf[i] / t)),
  });
  const runs = [summary(single, 1)];
  let crossEntropyGap: number | undefined;
  if (workers > 1) {
    const coordinator = Trainer.create(cfg, settings, tokenizer, examples);
    const parallel = await ParallelTrainer.start(coordinator, workers);
    try {
      const multi = await timeSteps(batches, (batch) => parallel.trainOn(batch));
      runs.push(summary(multi, workers));
      crossEntropyGap = Math.max(...multi.stats.map((s, i) => Math.abs(s.crossEntropy - single.stats[i].crossEntropy)));
    } finally {
      await parallel.close();
      coordinator.dispose();
    }
  }
  // Measured after the steps and the best kept: on a shared machine one short measurement can land in a busy spell.
  const ceiling = Math.max(matMulCeiling(1024, 256, 1024, 5), matMulCeiling(1024, 256, 1024, 5));
  const result: TrainBenchResult = {
    backend: tf.getBackend(),
    dModel: cfg.dModel,
    batchTokens: budget,
    steps,
    ceiling,
    runs,
    crossEntropyGap,
  };
  print(`plain 2-D matMul [1024,256]x[256,1024]: ${(ceiling / 1e9).toFixed(2)} GFLOP/s (${result.backend})`);
  print(`d${cfg.dModel}, ${budget} batch tokens, median of ${steps} steps after one warm-up step:`);
  for (const run of runs) print(`  ${formatRun(run, ceiling)}`);
  if (crossEntropyGap !== undefined)
    print(
      `  ratio ${(runs[1].tokensPerSecond / runs[0].tokensPerSecond).toFixed(2)}x; largest cross-entropy difference ${crossEntropyGap.toExponential(1)}`,
    );
  return result;
}

/** "N worker(s): tok/s, s/step, GFLOP/s = % of the matMul ceiling" */
export function formatRun(run: TrainRun, ceiling: number): string {
  return (
    `${run.workers} worker${run.workers > 1 ? 's' : ''}: ${run.tokensPerSecond.toFixed(0)} tok/s, ${run.secondsPerStep.toFixed(2)} s/step, ` +
    `${(run.flops / 1e9).toFixed(2)} GFLOP/s achieved = ${((100 * run.flops) / ceiling).toFixed(0)}% of the plain matMul ceiling`
  );
}
