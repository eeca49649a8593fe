import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { gatherRows, matMul2d, relu, takeRows } from '../../src/models/ops.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { maxRelativeError } from '../helpers/engine.ts';

before(useTestBackend);

/** Gradients of sum(f(x, y) * w) w.r.t. x and y, with a fixed random w so every output element matters. */
function gradsOf(f: (x: tf.Tensor, y: tf.Tensor) => tf.Tensor, x: tf.Tensor, y: tf.Tensor, wrt: 'both' | 'first'): Float32Array[] {
  return tf.tidy(() => {
    const out = f(x, y);
    const w = tf.randomNormal(out.shape, 0, 1, 'float32', 99);
    if (wrt === 'first') return [tf.grad((a: tf.Tensor) => f(a, y).mul(w).sum())(x).dataSync() as Float32Array];
    return tf.grads((a: tf.Tensor, b: tf.Tensor) => f(a, b).mul(w).sum())([x, y]).map((g) => g.dataSync() as Float32Array);
  });
}

/** Runs `fn` on tfjs's cpu backend, whose default gradients are the reference, and switches back. */
function onCpu<T>(fn: () => T): T {
  const previous = tf.getBackend();
  tf.setBackend('cpu');
  try {
    return fn();
  } finally {
    tf.setBackend(previous);
  }
}

test('matMul2d: same forward as tf.matMul, gradients match the default ones on cpu', () => {
  const before = tf.memory().numTensors;
  const a = tf.randomNormal([37, 24], 0, 1, 'float32', 1) as tf.Tensor2D;
  const b = tf.randomNormal([24, 19], 0, 1, 'float32', 2) as tf.Tensor2D;
  assert.deepEqual(tf.tidy(() => matMul2d(a, b).dataSync()), tf.tidy(() => tf.matMul(a, b).dataSync()));
  const ours = gradsOf((x, y) => matMul2d(x as tf.Tensor2D, y as tf.Tensor2D), a, b, 'both');
  const reference = onCpu(() => gradsOf((x, y) => tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D), a, b, 'both'));
  assert.equal(ours[0].length, 37 * 24);
  assert.equal(ours[1].length, 24 * 19);
  assert.ok(maxRelativeError(ours[0], reference[0]) < 1e-5, 'dA differs');
  assert.ok(maxRelativeError(ours[1], reference[1]) < 1e-5, 'dB differs');
  tf.dispose([a, b]);
  assert.equal(tf.memory().numTensors, before);
});

test("relu: same forward as tf.relu, gradient (TensorFlow's ReluGrad on tfjs-node) matches the default one on cpu", () => {
  const before = tf.memory().numTensors;
  const x = tf.tensor2d([[-2, -0.5, 0, 0.25], [3, -1e-3, 7, -4]]);
  const dummy = tf.zeros([1]);
  assert.deepEqual(tf.tidy(() => relu(x).dataSync()), tf.tidy(() => tf.relu(x).dataSync()));
  const [ours] = gradsOf((a) => relu(a as tf.Tensor2D), x, dummy, 'first');
  const [reference] = onCpu(() => gradsOf((a) => tf.relu(a), x, dummy, 'first'));
  assert.deepEqual(ours, reference);
  assert.ok(ours.some((v) => v !== 0) && ours.some((v) => v === 0));
  tf.dispose([x, dummy]);
  assert.equal(tf.memory().numTensors, before);
});

test('gatherRows: same forward as tf.gather, table gradient sums repeated ids like the default one on cpu', () => {
  const before = tf.memory().numTensors;
  const table = tf.randomNormal([50, 8], 0, 1, 'float32', 3) as tf.Tensor2D;
  const ids = tf.tensor1d([3, 7, 3, 0, 49, 3, 7, 12], 'int32');
  assert.deepEqual(tf.tidy(() => gatherRows(table, ids).dataSync()), tf.tidy(() => tf.gather(table, ids).dataSync()));
  const [ours] = gradsOf((t, i) => gatherRows(t as tf.Tensor2D, i as tf.Tensor1D), table, ids, 'first');
  const [reference] = onCpu(() => gradsOf((t, i) => tf.gather(t, i as tf.Tensor1D), table, ids, 'first'));
  assert.ok(maxRelativeError(ours, reference) < 1e-6);
  // Row 3 is gathered three times, row 1 never: the gradient must reflect both.
  assert.ok(ours.slice(8, 16).every((v) => v === 0), 'an unused row got a gradient');
  assert.ok(ours.slice(3 * 8, 4 * 8).some((v) => v !== 0));
  tf.dispose([table, ids]);
  assert.equal(tf.memory().numTensors, before);
});

test('takeRows: the rows tf.gather picks, in order, repeated, for float32 and int32, without leaking', () => {
  const x = tf.randomNormal([5, 3, 2, 4], 0, 1, 'float32', 7);
  const ids = tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]], [5, 2], 'int32');
  const rows = [4, 0, 2, 2];
  const index = tf.tensor1d(rows, 'int32');
  const before = tf.memory().numTensors;
  for (const t of [x, ids]) {
    const expected = tf.gather(t, index);
    const got = takeRows(t, rows);
    assert.deepEqual(got.shape, expected.shape);
    assert.equal(got.dtype, t.dtype);
    assert.deepEqual(got.dataSync(), expected.dataSync());
    tf.dispose([got, expected]);
  }
  assert.throws(() => takeRows(x, [5]), /row 5 is outside \[0, 5\)/);
  const none = takeRows(x, []);
  assert.deepEqual(none.shape, [0, 3, 2, 4]);
  none.dispose();
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, ids, index]);
});
