// Training losses: label-smoothed cross-entropy over target tokens and GShard's load-balancing loss.
import * as tf from '@tensorflow/tfjs';
import { gatherRows } from '../models/ops.ts';

/**
 * Mean over real tokens of (1 - eps) * NLL + eps * (mean NLL over the vocabulary), i.e. the
 * cross-entropy against a target that puts eps/V on every class and 1 - eps more on the right one.
 * logits: [N, V], targets: [N] ids, mask: [N] 1 for a real token, 0 for padding -> scalar
 */
export function labelSmoothedCrossEntropy(
  logits: tf.Tensor2D,
  targets: number[],
  mask: number[],
  eps: number,
): tf.Scalar {
  return tf.tidy(() => {
    const [n, vocab] = logits.shape;
    const logProbs = tf.logSoftmax(logits);
    // The right class's log-probability, gathered from the flattened [N*V] table (a gather's gradient is cheap on wasm).
    const flatIndex = tf.tensor1d(
      targets.map((t, row) => row * vocab + t),
      'int32',
    );
    const nll = gatherRows(logProbs.reshape([n * vocab, 1]), flatIndex)
      .reshape([n])
      .neg();
    const smooth = logProbs.mean(-1).neg();
    const perToken = nll.mul(1 - eps).add(smooth.mul(eps));
    const weights = tf.tensor1d(mask);
    return perToken
      .mul(weights)
      .sum()
      .div(
        Math.max(
          1,
          mask.reduce((a, b) => a + b, 0),
        ),
      ) as tf.Scalar;
  });
}

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
