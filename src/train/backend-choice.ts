// Which CPU backend `taskmoe train` uses when none is forced: where both wasm and TensorFlow's
// native kernels load, a few steps of this config's model on each (child processes, the same
// batches) decide, and the log says which won and by how much.
import { createRequire } from 'node:module';
import { readTrainConfig } from './config.ts';
import {
  compareTrainingBackends,
  describeChoice,
  fastest,
  formatTimings,
  trainingCandidates,
} from '../bench/train-backends.ts';

export interface BackendDecision {
  /** TASKMOE_BACKEND value for this process; undefined: leave the choice to initBackend. */
  backend?: 'wasm' | 'node';
  /** Worker threads to train with; undefined: as configured. */
  workers?: number;
}

/** Steps timed per backend when choosing (after one warm-up step): enough to rank, cheap next to a training run. */
const PROBE_STEPS = 2;

/** `workers`: --workers if given (else the config's train.workers); wasm is timed with it (at least 2) and with 1. */
export async function chooseTrainingBackend(opts: {
  config: string;
  workers?: number;
  log: (line: string) => void;
}): Promise<BackendDecision> {
  if ((process.env.TASKMOE_BACKEND ?? '') !== '') return {};
  // A GPU build outranks both CPU backends; initBackend picks it (or falls back) as everywhere else.
  if (resolves('@tensorflow/tfjs-node-gpu')) return {};
  if (!resolves('@tensorflow/tfjs-node')) return {};
  opts.log(
    `taskmoe train: timing ${PROBE_STEPS} steps on each CPU backend to pick the faster (TASKMOE_BACKEND skips this)`,
  );
  const timings = await compareTrainingBackends(
    trainingCandidates(Math.max(2, opts.workers ?? readTrainConfig(opts.config).train.workers)),
    { config: opts.config, steps: PROBE_STEPS },
  );
  for (const line of formatTimings(timings)) opts.log(`  ${line}`);
  const choice = fastest(timings);
  if (choice === undefined) return {};
  opts.log(`taskmoe train: using ${describeChoice(choice)}`);
  return { backend: choice.backend, workers: choice.workers };
}

function resolves(specifier: string): boolean {
  try {
    createRequire(import.meta.url).resolve(specifier);
    return true;
  } catch {
    return false;
  }
}
