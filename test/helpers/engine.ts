// Shared test set-up: a tiny model config for each routing combination and a temp checkpoint writer.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig, Routing } from '../../src/models/config.ts';
import { writeCheckpoint, type StorageDtype } from '../../src/models/checkpoint.ts';
import { initWeights } from '../../src/models/init.ts';

export const FIXTURE_TOKENIZER = path.join(import.meta.dirname, '..', 'fixtures', 'spm', 'tiny.model');
export const FIXTURE_VOCAB = 1000;

export function tinyConfig(encoder: Routing, decoder: Routing, over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    vocabSize: FIXTURE_VOCAB,
    dModel: 32,
    numHeads: 4,
    dFF: 48,
    encoderLayers: 2,
    decoderLayers: 2,
    moe: { numExperts: 6, topK: 2, every: 2 },
    routing: { encoder, decoder },
    languages: ['en', 'de', 'fr', 'ja'],
    pairs: ['en-de', 'de-en', 'en-fr', 'fr-en', 'en-ja', 'ja-en', 'fr-de'],
    maxLength: 40,
    tokenizer: 'tokenizer.model',
    ...over,
  };
}

export function tempDir(prefix = 'taskmoe-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Writes a randomly initialised checkpoint and returns its directory. */
export async function randomCheckpoint(cfg: ModelConfig, seed = 7, dtype: StorageDtype = 'float32'): Promise<string> {
  const dir = path.join(tempDir(), 'model');
  const weights = initWeights(cfg, seed);
  await writeCheckpoint(dir, cfg, weights, FIXTURE_TOKENIZER, dtype);
  tf.dispose([...weights.values()]);
  return dir;
}

/** Random source sentences of the given lengths (ids avoid the special ids 0-3). */
export function randomSources(lengths: number[], vocab: number, seed = 1): number[][] {
  let s = seed;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  return lengths.map((n) => Array.from({ length: n }, () => 4 + Math.floor(next() * (vocab - 4))));
}

/** Relative error in the max norm: max |a - b| / max |b|. */
export function maxRelativeError(a: Float32Array | number[], b: Float32Array | number[]): number {
  assert.equal(a.length, b.length, 'compared arrays differ in length');
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  return diff / scale;
}
