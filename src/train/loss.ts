// Training losses: label-smoothed cross-entropy over target tokens and GShard's load-balancing loss.
import * as tf from '@tensorflow/tfjs';
import { nativeKernels, nativeOp } from '../models/ops.ts';

type GradSave = (tensors: tf.Tensor[]) => void;
type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

/** Rows of logits per chunk: [256, 16000] float32 is 16 MB, under glibc's 32 MB mmap ceiling, so chunks reuse heap memory. */
export const OUTPUT_CHUNK_ROWS = 256;

/**
 * GShard's auxiliary loss for one gate: E * sum_e f_e * P_e, with f_e the fraction of rows whose
 * first choice is e (a constant: it comes from an argmax) and P_e the mean gate probability of e.
 * Equals 1 when routing is uniform and E when every row goes to one expert with certainty.
 * probs: [R, E], top1: [R] expert ids, -1 for rows to ignore -> scalar
 */
export function loadBalancingLoss(probs: tf.Tensor2D, top1: Int32Array): tf.Scalar {
  const numExperts = probs.shape[1];
  const valid = Float32Array.from(top1, (e) => (e >= 0 ? 1 : 0));
  const rows = valid.reduce((a, b) => a + b, 0);
  if (rows === 0) return tf.scalar(0);
  const fraction = new Float32Array(numExperts);
  top1.forEach((e) => {
    if (e >= 0) fraction[e] += 1 / rows;
  });
  return tf.tidy(() => {
    const meanProbs = probs
      .mul(tf.tensor2d(valid, [valid.length, 1]))
      .sum(0)
      .div(rows);
    return meanProbs.mul(tf.tensor1d(fraction)).sum().mul(numExperts) as tf.Scalar;
  });
}

// logits: [R, V], targets: [R] -> per-row loss [R] against the smoothed target (1 - eps on the right
// class plus eps/V everywhere) and its gradient softmax - smoothed target [R, V]
function smoothedSoftmaxLoss(logits: tf.Tensor2D, targets: tf.Tensor1D, eps: number): [tf.Tensor1D, tf.Tensor2D] {
  const vocab = logits.shape[1];
  const [on, off] = [1 - eps + eps / vocab, eps / vocab];
  if (nativeKernels()) {
    const smoothed = tf.oneHot(targets, vocab, on, off, 'float32');
    return nativeOp('SoftmaxCrossEntropyWithLogits', [logits, smoothed], 2) as [tf.Tensor1D, tf.Tensor2D];
  }
  // (wasm's OneHot writes zeros for a float32 output, hence the int32 one scaled.)
  const smoothed = tf
    .oneHot(targets, vocab)
    .mul(on - off)
    .add(off) as tf.Tensor2D;
  const logProbs = tf.logSoftmax(logits);
  return [smoothed.mul(logProbs).sum(1).neg() as tf.Tensor1D, logProbs.exp().sub(smoothed) as tf.Tensor2D];
}

/**
 * The tied output projection and the label-smoothed cross-entropy, mean over the rows given (the
 * real target tokens) of (1 - eps) * NLL + eps * (mean NLL over the vocabulary), i.e. the
 * cross-entropy against a target that puts eps/V on every class and 1 - eps more on the right one;
 * computed OUTPUT_CHUNK_ROWS rows at a time with
 * both gradients taken in the forward pass, so that no [N, V] tensor is ever whole. Fresh tensors
 * over 32 MB come from mmap and cost their page faults every time (~4.5 ms per MB here), and the
 * logits and their gradients were [~2,000, 16,000]: most of a step's time went there.
 * x: [N, d] decoder outputs, table: [V, d] the tied embedding, targets: [N] -> scalar
 */
export function outputCrossEntropy(
  x: tf.Tensor2D,
  table: tf.Tensor2D,
  targets: number[],
  eps: number,
  withGradients = true,
): tf.Scalar {
  const n = x.shape[0];
  if (n === 0) throw new Error('outputCrossEntropy needs at least one target row');
  const ids = tf.tensor1d(targets, 'int32');
  const chunks = (each: (rows: tf.Tensor2D, logits: tf.Tensor2D, ids: tf.Tensor1D) => tf.Scalar): tf.Scalar =>
    tf.tidy(() => {
      const tableT = nativeKernels() ? undefined : table.transpose();
      let sum = tf.scalar(0);
      for (let start = 0; start < n; start += OUTPUT_CHUNK_ROWS) {
        const size = Math.min(OUTPUT_CHUNK_ROWS, n - start);
        sum = tf.tidy(() => {
          const rows = x.slice([start, 0], [size, -1]) as tf.Tensor2D;
          // rows: [r, d] -> logits [r, V], TensorFlow reading the table transposed in place
          const logits = (
            tableT === undefined ? tf.matMul(rows, table, false, true) : tf.matMul(rows, tableT)
          ) as tf.Tensor2D;
          return sum.add(each(rows, logits, ids.slice(start, size)));
        });
      }
      return sum.div(n) as tf.Scalar;
    });
  if (!withGradients) {
    const loss = chunks((_, logits, chunkIds) => tf.tidy(() => smoothedSoftmaxLoss(logits, chunkIds, eps)[0].sum()));
    ids.dispose();
    return loss;
  }
  const fused = tf.customGrad(((xIn: tf.Tensor2D, tableIn: tf.Tensor2D, save: GradSave) => {
    const dx: tf.Tensor2D[] = [];
    let dTable = tf.zerosLike(tableIn);
    const value = chunks((rows, logits, chunkIds) => {
      const [loss, grad] = smoothedSoftmaxLoss(logits, chunkIds, eps);
      const g = grad.div(n) as tf.Tensor2D; // [r, V], d(mean loss)/d(logits)
      dx.push(tf.keep(tf.matMul(g, tableIn)));
      const previous = dTable;
      dTable = tf.keep(
        previous.add(nativeKernels() ? tf.matMul(g, rows, true, false) : tf.matMul(g.transpose(), rows)),
      );
      previous.dispose();
      return loss.sum();
    });
    const dxAll = tf.concat(dx);
    // save() keeps clones while a gradient tape records (and nothing otherwise); the originals go.
    save([dxAll, dTable]);
    tf.dispose([dxAll, dTable, ...dx]);
    return {
      value,
      gradFunc: (dy: tf.Scalar, [sdx, sTable]: tf.Tensor[]) => [sdx.mul(dy), sTable.mul(dy)],
    };
  }) as unknown as CustomGradientFunc);
  const loss = fused(x, table) as tf.Scalar;
  ids.dispose();
  return loss;
}
