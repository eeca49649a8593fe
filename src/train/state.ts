// A training checkpoint: one directory, replaced atomically, holding the model checkpoint (usable
// by `taskmoe translate --model DIR/model`), the Adam moments and the trainer's step and sampler
// RNG state, so that weights and optimizer state can never come from different steps.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CheckpointReader, writeCheckpoint } from '../models/checkpoint.ts';
import { type ModelConfig, tensorShapes } from '../models/config.ts';

export const MODEL_DIR = 'model';
const TRAINER_FILE = 'trainer.json';
const OPTIMIZER_FILE = 'optimizer.bin';

/** trainer.json: where training stands. */
export interface TrainerProgress {
  step: number;
  /** The batch sampler's RNG state after the last batch drawn. */
  rngState: number;
  /** Tensor order of optimizer.bin: m then v of each, float32. */
  names: string[];
}

export interface TrainingState extends TrainerProgress {
  weights: Map<string, tf.Tensor>;
  m: Map<string, tf.Tensor>;
  v: Map<string, tf.Tensor>;
}

/** Writes weights, moments and progress into `dir`, replacing what was there only once all is written. */
export async function saveTrainingState(
  dir: string,
  cfg: ModelConfig,
  tokenizerFile: string,
  weights: Map<string, tf.Tensor>,
  m: Map<string, tf.Tensor>,
  v: Map<string, tf.Tensor>,
  step: number,
  rngState: number,
): Promise<void> {
  const parent = path.dirname(path.resolve(dir));
  await fsp.mkdir(parent, { recursive: true });
  const tmp = await fsp.mkdtemp(path.join(parent, `.${path.basename(dir)}.tmp-`));
  try {
    await writeCheckpoint(path.join(tmp, MODEL_DIR), cfg, weights, tokenizerFile);
    const names = [...tensorShapes(cfg).keys()];
    const moments: Buffer[] = [];
    for (const name of names) {
      for (const t of [m.get(name)!, v.get(name)!]) {
        const values = (await t.data()) as Float32Array;
        moments.push(Buffer.from(values.buffer, values.byteOffset, values.byteLength));
      }
    }
    await fsp.writeFile(path.join(tmp, OPTIMIZER_FILE), Buffer.concat(moments));
    const progress: TrainerProgress = { step, rngState, names };
    await fsp.writeFile(path.join(tmp, TRAINER_FILE), JSON.stringify(progress) + '\n');
    const old = `${dir}.old-${process.pid}`;
    const existed = fs.existsSync(dir);
    if (existed) await fsp.rename(dir, old);
    await fsp.rename(tmp, dir);
    if (existed) await fsp.rm(old, { recursive: true, force: true });
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Reads what saveTrainingState wrote; the caller owns the tensors. */
export async function loadTrainingState(dir: string): Promise<TrainingState & { config: ModelConfig }> {
  const reader = await CheckpointReader.open(path.join(dir, MODEL_DIR));
  const progress = JSON.parse(await fsp.readFile(path.join(dir, TRAINER_FILE), 'utf8')) as TrainerProgress;
  const bytes = await fsp.readFile(path.join(dir, OPTIMIZER_FILE));
  const shapes = tensorShapes(reader.config);
  const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const m = new Map<string, tf.Tensor>();
  const v = new Map<string, tf.Tensor>();
  let offset = 0;
  for (const name of progress.names) {
    const shape = shapes.get(name);
    if (shape === undefined) throw new Error(`${dir}: optimizer state names unknown tensor "${name}"`);
    const size = shape.reduce((a, b) => a * b, 1);
    m.set(name, tf.tensor(floats.subarray(offset, offset + size), shape));
    v.set(name, tf.tensor(floats.subarray(offset + size, offset + 2 * size), shape));
    offset += 2 * size;
  }
  if (offset !== floats.length)
    throw new Error(`${dir}/${OPTIMIZER_FILE} holds ${floats.length} floats, expected ${offset}`);
  const weights = await reader.read(shapes.keys());
  return { ...progress, config: reader.config, weights, m, v };
}

/**
 * A training state that starts from the weights of a model checkpoint (any storage dtype) at
 * `step`, with zero Adam moments: continuing from a shipped or averaged model whose optimizer state
 * is gone. With beta2 0.98 the moments settle within about 50 steps.
 */
export async function stateFromModel(
  dir: string,
  step: number,
  rngState: number,
): Promise<TrainingState & { config: ModelConfig }> {
  const reader = await CheckpointReader.open(dir);
  const shapes = tensorShapes(reader.config);
  const stored = await reader.read(shapes.keys());
  const weights = new Map([...stored].map(([name, t]) => [name, tf.tidy(() => t.toFloat())]));
  tf.dispose([...stored.values()]);
  const zeros = () => new Map([...shapes].map(([name, shape]) => [name, tf.zeros(shape)]));
  return { config: reader.config, step, rngState, names: [...shapes.keys()], weights, m: zeros(), v: zeros() };
}
