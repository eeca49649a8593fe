// Transformer layers as small functions over tensors. Every projection is a 2-D, untransposed
// matMul on [rows, in] x [in, out]: on the wasm backend that is 10x faster than a transposed or
// batched matMul, so weights are stored as [in, out] and activations are flattened to rows.
import * as tf from '@tensorflow/tfjs';
import { matMul2d, relu } from './ops.ts';

export type Weights = Map<string, tf.Tensor>;

export function weight<R extends tf.Rank>(w: Weights, name: string): tf.Tensor<R> {
  const t = w.get(name);
  if (t === undefined) throw new Error(`missing tensor "${name}"`);
  return t as tf.Tensor<R>;
}

// x: [N, d] -> [N, d]
export function layerNorm(x: tf.Tensor2D, g: tf.Tensor1D, b: tf.Tensor1D, eps = 1e-5): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true);
  return x.sub(mean).mul(tf.rsqrt(variance.add(eps))).mul(g).add(b);
}

// x: [N, d], w: [d, f], b: [f] -> [N, f]
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  const y = matMul2d(x, w);
  return b === undefined ? y : y.add(b);
}

export type Activation = 'relu' | 'gelu' | 'swish';

export function activate(x: tf.Tensor2D, act: Activation): tf.Tensor2D {
  if (act === 'relu') return relu(x);
  if (act === 'swish') return x.mul(tf.sigmoid(x));
  return x.mul(tf.erf(x.mul(Math.SQRT1_2)).add(1)).mul(0.5); // exact (erf) GELU, as torch's default
}

/** One FFN's weights: wi [d, f], wo [f, d] and, in models with biases, bi [f], bo [d]. */
export interface FfnWeights {
  wi: tf.Tensor2D;
  wo: tf.Tensor2D;
  bi?: tf.Tensor1D;
  bo?: tf.Tensor1D;
}

// x: [N, d] -> act(x wi + bi) wo + bo: [N, d]
export function ffn(x: tf.Tensor2D, w: FfnWeights, act: Activation = 'relu'): tf.Tensor2D {
  return linear(activate(linear(x, w.wi, w.bi), act), w.wo, w.bo);
}

// x: [B*T, H*dh] -> [B, H, T, dh]
export function splitHeads(x: tf.Tensor2D, batch: number, heads: number): tf.Tensor4D {
  const [rows, width] = x.shape;
  return x.reshape([batch, rows / batch, heads, width / heads]).transpose([0, 2, 1, 3]);
}

// x: [B, H, T, dh] -> [B*T, H*dh]
export function mergeHeads(x: tf.Tensor4D): tf.Tensor2D {
  const [b, h, t, dh] = x.shape;
  return x.transpose([0, 2, 1, 3]).reshape([b * t, h * dh]);
}

/**
 * Scaled dot-product attention. Keys stay [B, H, S, dh] and the scores use transposeB: on wasm the
 * batched matMul then reads contiguous rows, and the decoder's key cache grows along axis 2, one
 * block copy per (b, h) instead of one per key dimension (measured 1.4-2.1x faster per step,
 * bench/results/engine.md, attention micro-benchmark).
 * q: [B, H, T, dh], k: [B, H, S, dh], v: [B, H, S, dh], bias: broadcastable to [B, H, T, S] -> [B, H, T, dh]
 */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, bias: tf.Tensor | null): tf.Tensor4D {
  const [b, h, t, dh] = q.shape;
  const s = k.shape[2];
  let scores: tf.Tensor = tf.matMul(q.reshape([b * h, t, dh]), k.reshape([b * h, s, dh]), false, true).reshape([b, h, t, s]);
  scores = scores.mul(1 / Math.sqrt(dh));
  if (bias !== null) scores = scores.add(bias);
  const probs = tf.softmax(scores);
  return tf.matMul(probs.reshape([b * h, t, s]), v.reshape([b * h, s, dh])).reshape([b, h, t, dh]);
}

/**
 * Additive attention bias letting each row see only the key columns [starts[b], ends[b]):
 * [B] -> [B, 1, 1, S], 0 inside the window and -1e9 outside (source padding, cache columns from
 * before a row joined the batch).
 */
export function windowBias(starts: readonly number[], ends: readonly number[], len: number): tf.Tensor4D {
  return tf.tensor4d(windowBiasData(starts, ends, len), [starts.length, 1, 1, len]);
}

/** windowBias's values on the host, [B * len]. */
export function windowBiasData(starts: readonly number[], ends: readonly number[], len: number): Float32Array {
  const bias = new Float32Array(starts.length * len).fill(-1e9);
  starts.forEach((start, b) => bias.fill(0, b * len + start, b * len + ends[b]));
  return bias;
}

/** Causal bias: [1, 1, T, T], -1e9 above the diagonal. */
export function causalBias(t: number): tf.Tensor4D {
  return tf.tidy(() => tf.linalg.bandPart(tf.ones([t, t]), -1, 0).sub(1).mul(1e9).reshape([1, 1, t, t]));
}

/**
 * Sinusoidal position encodings for positions offset .. offset + maxLen - 1, [maxLen, d]: sines in
 * the first half, cosines in the second, at frequencies 10000^(-2i/d) (taskmoe, Marian) or, for
 * 'fairseq' (M2M-100, NLLB), 10000^(-i/(d/2 - 1)).
 */
export function sinusoidalPositions(maxLen: number, d: number, kind: 'sinusoidal' | 'fairseq' = 'sinusoidal', offset = 0): tf.Tensor2D {
  return tf.tensor2d(positionTable(maxLen, d, kind, offset), [maxLen, d]);
}

/** The position table on the host, [maxLen, d] row-major (the ONNX graphs embed it too). */
export function positionTable(maxLen: number, d: number, kind: 'sinusoidal' | 'fairseq' = 'sinusoidal', offset = 0): Float32Array {
  const table = new Float32Array(maxLen * d);
  const half = Math.floor(d / 2);
  // fairseq computes in float32: exp(i * -log(10000)/(half-1)), then pos * freq
  const step = Math.fround(Math.log(10000) / (half - 1));
  const freq = (i: number) => (kind === 'fairseq' ? Math.fround(Math.exp(Math.fround(i * -step))) : 1 / Math.pow(10000, (2 * i) / d));
  for (let p = 0; p < maxLen; p++) {
    const pos = p + offset;
    for (let i = 0; i < half; i++) {
      const angle = kind === 'fairseq' ? Math.fround(pos * freq(i)) : pos * freq(i);
      table[p * d + i] = Math.sin(angle);
      table[p * d + half + i] = Math.cos(angle);
    }
  }
  return table;
}
