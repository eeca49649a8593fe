// The training config file: a model config.json plus a "train" section with the trainer's settings.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ModelConfig, ConfigError, parseConfig } from '../models/config.ts';

/**
 * The "train" section of a training config. Every field is optional; paths are relative to the
 * config file.
 */
export interface TrainSettings {
  /** SentencePiece model shared by all languages. Default "tokenizer.model". */
  tokenizer: string;
  /** Total steps when --steps is not given. Default 100000. */
  steps: number;
  /** Padded tokens per batch: sentences × the longest side (source or target) in the batch. Default 4096. */
  batchTokens: number;
  /** Peak learning rate, reached at the end of warm-up, then decayed as 1/sqrt(step). Default 5e-4. */
  peakLr: number;
  /** Linear warm-up steps of the inverse-square-root schedule. Default 4000. */
  warmupSteps: number;
  /** The learning rate falls linearly to zero over the run's last cooldownSteps steps (up to --steps or steps). Default 0: none. */
  cooldownSteps: number;
  /**
   * Stop (saving the state) after this step while the learning-rate schedule stays that of --steps
   * or steps: a budget cut short of the schedule's end, resumable to it. Default 0: no early stop.
   */
  stopAt: number;
  /** Adam's beta1, beta2 and epsilon. Defaults 0.9, 0.98, 1e-9. */
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Label smoothing of the cross-entropy. Default 0.1. */
  labelSmoothing: number;
  /** Weight of GShard's load-balancing loss (summed over MoE layers). Default 0.01. */
  balanceWeight: number;
  /** Sampling temperature over directions: p ∝ (n / N)^(1/T). Default 5. */
  temperature: number;
  /** Gradients are scaled down to this global L2 norm when above it. Default 1.0. */
  clipNorm: number;
  /** Steps between progress lines on stderr. Default 10. */
  logEvery: number;
  /** Steps between dev evaluations (0: never). Default 1000. */
  evalEvery: number;
  /** Steps between checkpoints (0: only at the end and on SIGINT). Default 1000. */
  saveEvery: number;
  /** Steps between model-only snapshots in OUT/snapshots/step-N, kept for averaging (0: none). Default 0. */
  snapshotEvery: number;
  /** Corpus directories of training en-XX.tsv files, read as one corpus (--data replaces them). Default none. */
  data?: string[];
  /** Corpus directory (or directories) of dev en-XX.tsv files; no dev evaluation without it. Default none. */
  devDir?: string | string[];
  /** Dev pairs per direction for the dev loss (the first ones of each file). Default 200. */
  devSentences: number;
  /** Dev pairs per direction greedily decoded for BLEU and chrF. Default 50. */
  devDecodeSentences: number;
  /** Seed of the weight initialisation and the batch sampler. Default 1. */
  seed: number;
  /** Worker threads sharing each batch (data parallelism); 1 trains on the calling thread. Default 1. */
  workers: number;
}

export const TRAIN_DEFAULTS: TrainSettings = {
  tokenizer: 'tokenizer.model',
  steps: 100000,
  batchTokens: 4096,
  peakLr: 5e-4,
  warmupSteps: 4000,
  cooldownSteps: 0,
  stopAt: 0,
  beta1: 0.9,
  beta2: 0.98,
  epsilon: 1e-9,
  labelSmoothing: 0.1,
  balanceWeight: 0.01,
  temperature: 5,
  clipNorm: 1.0,
  logEvery: 10,
  evalEvery: 1000,
  saveEvery: 1000,
  snapshotEvery: 0,
  devSentences: 200,
  devDecodeSentences: 50,
  seed: 1,
  workers: 1,
};

/** Fields holding lists of paths, which have no default. */
const PATH_LISTS = ['data', 'devDir'];

export interface TrainConfig {
  model: ModelConfig;
  train: TrainSettings;
}

/** Parses a training config; relative paths in "train" are resolved against the file's directory. */
export function readTrainConfig(file: string): TrainConfig {
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  return parseTrainConfig(raw, path.dirname(path.resolve(file)), file);
}

export function parseTrainConfig(raw: Record<string, unknown>, baseDir: string, where = 'config'): TrainConfig {
  const model = parseConfig(raw, where);
  const section = (raw.train ?? {}) as Record<string, unknown>;
  if (typeof section !== 'object' || Array.isArray(section))
    throw new ConfigError(`${where}: "train" must be an object`);
  const train: TrainSettings = { ...TRAIN_DEFAULTS };
  for (const [key, value] of Object.entries(section)) {
    if (!(key in TRAIN_DEFAULTS) && !PATH_LISTS.includes(key))
      throw new ConfigError(`${where}: unknown field "train.${key}"`);
    const isPath = key === 'tokenizer' || key === 'devDir';
    const isPathList =
      PATH_LISTS.includes(key) && Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string');
    if (
      key === 'data'
        ? !isPathList
        : isPath
          ? !(typeof value === 'string' || isPathList)
          : !(typeof value === 'number' && Number.isFinite(value) && value >= 0)
    ) {
      const what =
        key === 'data'
          ? 'a non-empty list of paths'
          : key === 'devDir'
            ? 'a path or a non-empty list of paths'
            : isPath
              ? 'a path'
              : 'a non-negative number';
      throw new ConfigError(`${where}: "train.${key}" must be ${what}, got ${JSON.stringify(value)}`);
    }
    (train as unknown as Record<string, unknown>)[key] = value;
  }
  if (!Number.isInteger(train.workers) || train.workers < 1)
    throw new ConfigError(`${where}: "train.workers" must be a positive integer, got ${train.workers}`);
  const resolve = (p: string) => path.resolve(baseDir, p);
  train.tokenizer = resolve(train.tokenizer);
  if (train.data !== undefined) train.data = train.data.map(resolve);
  if (train.devDir !== undefined)
    train.devDir = typeof train.devDir === 'string' ? resolve(train.devDir) : train.devDir.map(resolve);
  return { model, train };
}
