// `taskmoe train`: reads the config and corpus, then loops over steps with progress lines,
// periodic dev evaluation and checkpoints, resuming exactly from the last checkpoint if asked.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeSkipped, readCorpus, directionsOf, pairsFor } from '../data/corpus.ts';
import { pairKey } from '../models/config.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { type TrainConfig, readTrainConfig } from './config.ts';
import { type Example, tokenizeCorpus } from './data.ts';
import { ParallelTrainer } from './parallel.ts';
import { loadTrainingState, stateFromModel } from './state.ts';
import { type DevScores, type DevTranslations, type StepStats, Trainer } from './trainer.ts';

export type { TrainSettings } from './config.ts';
export { TRAIN_DEFAULTS, parseTrainConfig, readTrainConfig } from './config.ts';
export { Trainer } from './trainer.ts';
export { ParallelTrainer } from './parallel.ts';

export interface TrainOptions {
  /** Training config: a model config.json plus a "train" section (see TrainSettings). */
  config: string;
  /** Corpus directories of en-XX.tsv files, read as one corpus (default: the config's train.data). */
  data?: string | string[];
  /** Output directory; checkpoints go to OUT/latest (the model itself in OUT/latest/model), snapshots to OUT/snapshots. */
  out: string;
  /** Train until this step (default: train.steps of the config). */
  steps?: number;
  /** Continue from OUT/latest, with the same weights, optimizer and sampler state. */
  resume?: boolean;
  /**
   * Without a checkpoint to resume, start from this model checkpoint's weights at this step (the
   * learning-rate schedule continues from it), with fresh Adam moments and the batch sampler seeded
   * with train.seed + step.
   */
  init?: { model: string; step: number };
  /** Worker threads sharing each batch (default: train.workers of the config). */
  workers?: number;
  /** Where progress lines go (default: stderr). */
  log?: (line: string) => void;
}

export interface TrainResult {
  /** The step reached. */
  step: number;
  /** Per-step statistics of this invocation. */
  steps: StepStats[];
  dev: DevScores[];
  /** Stopped by SIGINT (after saving). */
  interrupted: boolean;
}

/** Directory of the latest checkpoint under an output directory. */
export function latestCheckpoint(out: string): string {
  return path.join(out, 'latest');
}

/** Directory of the model-only snapshot taken at `step` (train.snapshotEvery). */
export function snapshotCheckpoint(out: string, step: number): string {
  return path.join(out, 'snapshots', `step-${step}`);
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const { model: cfg, train: settings }: TrainConfig = readTrainConfig(opts.config);
  const tokenizer = await Tokenizer.load(settings.tokenizer);
  // The vocabulary and every configured language's <2xx> tag, named when missing.
  tokenizer.checkServes(cfg, opts.config);
  const data = opts.data ?? settings.data;
  if (data === undefined)
    throw new Error(`no training data: pass --data DIR or list directories in "train.data" of ${opts.config}`);
  const corpus = await readCorpus(data, { languages: cfg.languages });
  for (const line of describeSkipped(corpus.stats)) log(`taskmoe train: ${line}`);
  const examples = tokenizeCorpus(corpus, tokenizer, cfg.pairs, cfg.maxLength);
  log(`taskmoe train: ${[...examples].map(([d, e]) => `${d} ${e.length}`).join(', ')}`);
  const latest = latestCheckpoint(opts.out);
  const resuming = opts.resume === true && fs.existsSync(latest);
  if (opts.resume && !resuming)
    log(`taskmoe train: nothing to resume in ${latest}, starting ${opts.init ? `from ${opts.init.model}` : 'afresh'}`);
  const from = resuming ? latest : opts.init?.model;
  const resume = resuming
    ? await loadTrainingState(latest)
    : opts.init !== undefined
      ? await stateFromModel(opts.init.model, opts.init.step, settings.seed + opts.init.step)
      : undefined;
  if (
    resume !== undefined &&
    JSON.stringify(resume.config) !== JSON.stringify({ ...cfg, tokenizer: resume.config.tokenizer })
  ) {
    throw new Error(`${from} has a different model config than ${opts.config}`);
  }
  const dev =
    settings.devDir !== undefined
      ? await readDev(
          settings.devDir,
          cfg.languages,
          cfg.pairs,
          cfg.maxLength,
          tokenizer,
          settings.devSentences,
          settings.devDecodeSentences,
        )
      : undefined;
  const workers = opts.workers ?? settings.workers;
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`workers must be a positive integer, got ${workers}`);
  const lastStep = opts.steps ?? settings.steps;
  // The run's own last step, which the learning-rate cooldown counts back from.
  const trainer = Trainer.create(cfg, { ...settings, steps: lastStep }, tokenizer, examples, resume);
  let parallel: ParallelTrainer | undefined;
  try {
    if (workers > 1) parallel = await ParallelTrainer.start(trainer, workers);
  } catch (err) {
    trainer.dispose();
    throw err;
  }
  log(`taskmoe train: ${workers > 1 ? `${workers} worker threads, data parallel` : '1 worker (this thread)'}`);
  const result: TrainResult = { step: trainer.step, steps: [], dev: [], interrupted: false };
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.on('SIGINT', onSigint);
  try {
    const started = Date.now();
    let tokens = 0;
    const firstStep = trainer.step;
    const stopAt = settings.stopAt > 0 ? Math.min(settings.stopAt, lastStep) : lastStep;
    while (trainer.step < stopAt && !interrupted) {
      const stats = parallel !== undefined ? await parallel.trainStep() : trainer.trainStep();
      result.steps.push(stats);
      tokens += stats.tokens;
      const done = trainer.step;
      if (done % settings.logEvery === 0 || done === stopAt) {
        const seconds = (Date.now() - started) / 1000;
        const eta = ((stopAt - done) * seconds) / (done - firstStep);
        log(
          `step ${done}/${lastStep} loss ${stats.loss.toFixed(3)} (ce ${stats.crossEntropy.toFixed(3)}, balance ${stats.balance.toFixed(3)}) lr ${stats.lr.toExponential(2)} |g| ${stats.gradNorm.toFixed(2)} ${Math.round(tokens / seconds)} tok/s ETA ${formatSeconds(eta)}`,
        );
      }
      if (dev !== undefined && settings.evalEvery > 0 && done % settings.evalEvery === 0)
        result.dev.push(evaluateDev(trainer, dev, log));
      if (settings.saveEvery > 0 && done % settings.saveEvery === 0) await trainer.save(latest, settings.tokenizer);
      if (settings.snapshotEvery > 0 && done % settings.snapshotEvery === 0)
        await trainer.saveModel(snapshotCheckpoint(opts.out, done), settings.tokenizer);
      // Lets a pending SIGINT run its handler between steps.
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (trainer.step !== firstStep || interrupted) await trainer.save(latest, settings.tokenizer);
    if (interrupted) log(`taskmoe train: interrupted; saved step ${trainer.step} to ${latest}`);
    result.step = trainer.step;
    result.interrupted = interrupted;
    return result;
  } finally {
    process.off('SIGINT', onSigint);
    await parallel?.close();
    trainer.dispose();
  }
}

interface DevData {
  examples: Example[];
  translations: DevTranslations[];
}

async function readDev(
  dir: string | string[],
  languages: string[],
  pairs: string[],
  maxLength: number,
  tok: Tokenizer,
  lossSentences: number,
  decodeSentences: number,
): Promise<DevData> {
  const corpus = await readCorpus(dir, { languages, maxPerFile: Math.max(lossSentences, decodeSentences) });
  const examples = [...tokenizeCorpus(corpus, tok, pairs, maxLength, lossSentences).values()].flat();
  const translations = directionsOf(corpus.languages)
    .filter((d) => pairs.includes(pairKey(d.source, d.target)))
    .map((dir) => {
      const chosen = pairsFor(corpus.files, dir)
        .slice(0, decodeSentences)
        .filter((p) => tok.encodeSource(p.source, dir.target).length <= maxLength);
      return {
        dir,
        sources: chosen.map((p) => tok.encodeSource(p.source, dir.target)),
        references: chosen.map((p) => p.target),
      };
    });
  return { examples, translations };
}

function evaluateDev(trainer: Trainer, dev: DevData, log: (line: string) => void): DevScores {
  const loss = trainer.devLoss(dev.examples);
  const { bleu, chrf } = trainer.devScores(dev.translations);
  log(
    `dev step ${trainer.step}: loss ${loss.toFixed(3)} BLEU ${bleu.toFixed(2)} chrF ${chrf.toFixed(2)} (${dev.translations.length} directions)`,
  );
  return { step: trainer.step, loss, bleu, chrf };
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}
