import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { moeFFN, topKGating, type ExpertWeights } from '../../src/models/moe.ts';
import { ffn } from '../../src/models/layers.ts';
import { useTestBackend } from '../helpers/backend.ts';

before(useTestBackend);

test('top-k gating picks exactly the k most probable experts, with gates summing to 1', () => {
  const rows = 20, experts = 8, k = 3;
  const logits = tf.randomNormal([rows, experts], 0, 2, 'float32', 3) as tf.Tensor2D;
  const { routes, probs } = topKGating(logits, k);
  const p = probs.arraySync();
  const g = routes.gates.arraySync();
  for (let r = 0; r < rows; r++) {
    const chosen = Array.from(routes.experts.subarray(r * k, (r + 1) * k));
    assert.equal(new Set(chosen).size, k, `row ${r} chose duplicate experts`);
    const ranked = p[r].map((v, e) => [v, e]).sort((a, b) => b[0] - a[0]).slice(0, k).map(([, e]) => e);
    assert.deepEqual([...chosen].sort(), [...ranked].sort(), `row ${r} did not choose the top ${k}`);
    const sum = g[r].reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-6, `row ${r} gates sum to ${sum}`);
    // Renormalised: each gate is its expert's probability over the chosen experts' total.
    const chosenMass = chosen.reduce((a, e) => a + p[r][e], 0);
    chosen.forEach((e, s) => assert.ok(Math.abs(g[r][s] - p[r][e] / chosenMass) < 1e-6));
  }
  tf.dispose([logits, probs, routes.gates]);
});

test('sparse MoE dispatch equals the dense weighted sum over each row\'s chosen experts, skipping padding rows', () => {
  const n = 12, d = 8, f = 16, numExperts = 5, k = 2;
  const before = tf.memory().numTensors;
  const x = tf.randomNormal([n, d], 0, 1, 'float32', 1) as tf.Tensor2D;
  const experts: ExpertWeights[] = Array.from({ length: numExperts }, (_, e) => ({
    wi: tf.randomNormal([d, f], 0, 0.3, 'float32', 10 + e) as tf.Tensor2D,
    wo: tf.randomNormal([f, d], 0, 0.3, 'float32', 20 + e) as tf.Tensor2D,
  }));
  const logits = tf.randomNormal([n, numExperts], 0, 1, 'float32', 5) as tf.Tensor2D;
  const { routes, probs } = topKGating(logits, k);
  routes.experts.fill(-1, 3 * k, 4 * k); // row 3 is padding
  const yT = moeFFN(x, routes, experts);
  const y = yT.arraySync();
  const gates = routes.gates.arraySync();
  for (let r = 0; r < n; r++) {
    const expected = tf.tidy(() => {
      let acc = tf.zeros([1, d]);
      for (let s = 0; s < k; s++) {
        const e = routes.experts[r * k + s];
        if (e < 0) continue;
        acc = acc.add(ffn(x.slice([r, 0], [1, d]), experts[e]).mul(gates[r][s]));
      }
      return acc.arraySync() as number[][];
    })[0];
    expected.forEach((v, j) => assert.ok(Math.abs(y[r][j] - v) < 1e-5, `row ${r} col ${j}: ${y[r][j]} vs ${v}`));
  }
  assert.ok(y[3].every((v) => v === 0), 'padding row must be zero');
  tf.dispose([x, yT, logits, probs, routes.gates, ...experts.flatMap((e) => [e.wi, e.wo])]);
  assert.equal(tf.memory().numTensors, before);
});
