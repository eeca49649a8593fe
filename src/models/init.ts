// Random initialisation of every tensor a config names, deterministic for a seed.
import * as tf from '@tensorflow/tfjs';
import { type ModelConfig, tensorShapes } from './config.ts';
import type { Weights } from './layers.ts';

/** Scaled-normal init: projections ~ N(0, 1/fan_in), embeddings ~ N(0, 1/d), layer norms 1 and 0, task embeddings ~ N(0, 1). */
export function initWeights(cfg: ModelConfig, seed = 1): Weights {
  const weights: Weights = new Map();
  let i = 0;
  for (const [name, shape] of tensorShapes(cfg)) {
    const s = seed * 100003 + i++;
    let t: tf.Tensor;
    if (name.endsWith('.ln.g') || name.endsWith('.lnF.g')) t = tf.ones(shape);
    else if (name.endsWith('.ln.b') || name.endsWith('.lnF.b')) t = tf.zeros(shape);
    else if (name === 'embed') t = tf.randomNormal(shape, 0, 1 / Math.sqrt(cfg.dModel), 'float32', s);
    else if (name.endsWith('.taskEmbed')) t = tf.randomNormal(shape, 0, 1, 'float32', s);
    else t = tf.randomNormal(shape, 0, 1 / Math.sqrt(shape[0]), 'float32', s);
    weights.set(name, t);
  }
  return weights;
}
