import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { gatherRows } from '../../src/models/ops.ts';
import { OUTPUT_CHUNK_ROWS, outputCrossEntropy } from '../../src/train/loss.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { maxRelativeError } from '../helpers/engine.ts';

before(useTestBackend);

const EPS = 0.1;

/**
 * The trainer's loss before the output layer was chunked: logits of every padded row, the
 * label-smoothed cross-entropy from a log-softmax, masked to the real rows.
 * states: [N, d], table: [V, d], targets: [N] (padding rows anything), mask: [N] -> scalar
 */
function paddedReference(states: tf.Tensor2D, table: tf.Tensor2D, targets: number[], mask: number[]): tf.Scalar {
  const [n, vocab] = [states.shape[0], table.shape[0]];
  const logProbs = tf.logSoftmax(tf.matMul(states, table.transpose()));
  const flatIndex = tf.tensor1d(
    targets.map((t, row) => row * vocab + t),
    'int32',
  );
  const nll = gatherRows(logProbs.reshape([n * vocab, 1]), flatIndex)
    .reshape([n])
    .neg();
  const perToken = nll.mul(1 - EPS).add(logProbs.mean(-1).neg().mul(EPS));
  return perToken
    .mul(tf.tensor1d(mask))
    .sum()
    .div(mask.reduce((a, b) => a + b, 0)) as tf.Scalar;
}

// A padded batch of `sentences` rows of T = 12 positions, the first `lengths[b]` of each real.
function paddedBatch(vocab: number, d: number) {
  const t = 12;
  const lengths = Array.from({ length: 60 }, (_, b) => 1 + ((b * 7) % t));
  const mask = lengths.flatMap((len) => Array.from({ length: t }, (_, i) => (i < len ? 1 : 0)));
  const targets = mask.map((_, row) => (row * 31 + 5) % vocab);
  const realRows = mask.flatMap((m, row) => (m === 1 ? [row] : []));
  const states = tf.randomNormal([mask.length, d], 0, 1, 'float32', 11) as tf.Tensor2D;
  const table = tf.randomNormal([vocab, d], 0, 0.5, 'float32', 12) as tf.Tensor2D;
  return { states, table, targets, mask, realRows };
}

test('outputCrossEntropy over the real rows, chunked, equals the padded masked loss, with the same gradients', () => {
  const before = tf.memory().numTensors;
  const { states, table, targets, mask, realRows } = paddedBatch(50, 8);
  assert.ok(realRows.length > OUTPUT_CHUNK_ROWS, 'the batch spans several chunks');
  const reference = tf.tidy(() => {
    const f = (s: tf.Tensor, w: tf.Tensor) => paddedReference(s as tf.Tensor2D, w as tf.Tensor2D, targets, mask);
    const { value, grads } = tf.valueAndGrads(f)([states, table]);
    return { loss: value.dataSync()[0], grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
  const ours = tf.tidy(() => {
    const f = (s: tf.Tensor, w: tf.Tensor) =>
      outputCrossEntropy(
        gatherRows(s as tf.Tensor2D, tf.tensor1d(realRows, 'int32')),
        w as tf.Tensor2D,
        realRows.map((row) => targets[row]),
        EPS,
      );
    const { value, grads } = tf.valueAndGrads(f)([states, table]);
    return { loss: value.dataSync()[0], grads: grads.map((g) => g.dataSync() as Float32Array) };
  });
  assert.ok(Math.abs(ours.loss - reference.loss) < 1e-5 * reference.loss, `loss ${ours.loss} vs ${reference.loss}`);
  assert.ok(maxRelativeError(ours.grads[0], reference.grads[0]) < 1e-4, 'd(states) differs');
  assert.ok(maxRelativeError(ours.grads[1], reference.grads[1]) < 1e-4, 'd(table) differs');
  // Padding rows get no gradient; real rows do.
  assert.ok(
    ours.grads[0].slice(8 * 1, 8 * 12).every((v) => v === 0),
    'a padding row of sentence 0 got a gradient',
  );
  assert.ok(ours.grads[0].slice(0, 8).some((v) => v !== 0));
  // Without gradients (evaluation), the same loss.
  const evaluated = tf.tidy(
    () =>
      outputCrossEntropy(
        gatherRows(states, tf.tensor1d(realRows, 'int32')),
        table,
        realRows.map((row) => targets[row]),
        EPS,
        false,
      ).dataSync()[0],
  );
  assert.ok(Math.abs(evaluated - reference.loss) < 1e-5 * reference.loss);
  tf.dispose([states, table]);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
});

test('outputCrossEntropy refuses an empty batch', () => {
  const x = tf.zeros([0, 4]) as tf.Tensor2D;
  const table = tf.zeros([10, 4]) as tf.Tensor2D;
  assert.throws(() => outputCrossEntropy(x, table, [], EPS), /at least one target row/);
  tf.dispose([x, table]);
});
