// Expert extraction by measured routing (taskmoe extract --by-usage).
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { CheckpointReader } from '../../src/models/checkpoint.ts';
import { Seq2Seq } from '../../src/models/model.ts';
import { keepExperts, keptExperts, measureUsage } from '../../src/models/usage.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { FIXTURE_VOCAB, maxRelativeError, randomCheckpoint, randomSources, tinyConfig } from '../helpers/engine.ts';

before(useTestBackend);

const dir = { source: 'en', target: 'de' };
const ids = { bosId: 1, eosId: 2 };

async function tokenModel(): Promise<Seq2Seq> {
  return Seq2Seq.load(await CheckpointReader.open(await randomCheckpoint(tinyConfig('token', 'token'), 11)));
}

// logits of the whole model on sources and a fixed decoder prefix: [B*T, V]
function logits(model: Seq2Seq, sources: number[][]): Float32Array {
  const dirs = sources.map(() => dir);
  const enc = model.encoder.encode(model.embeddings, sources, dirs);
  const state = model.decoder.start(enc, dirs);
  const out = model.decoder.forward(model.embeddings, state, sources.map(() => [1, 5, 9, 13]));
  const data = out.dataSync() as Float32Array;
  tf.dispose([enc.out, out]);
  model.decoder.disposeState(state);
  return data;
}

test('gate mass is counted per MoE layer of both token-routed stacks, one unit per routed token', async () => {
  const model = await tokenModel();
  const sources = randomSources([5, 9, 3, 7], FIXTURE_VOCAB);
  const usage = measureUsage(model, sources, dir, ids);
  assert.deepEqual([...usage.keys()].sort(), ['decoder.layers.1', 'encoder.layers.1']);
  const encoderMass = usage.get('encoder.layers.1')!.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(encoderMass - (5 + 9 + 3 + 7)) < 1e-3, `each source token adds 1 (got ${encoderMass})`);
  const kept = keptExperts(usage, 2);
  for (const [layer, experts] of kept) {
    const mass = usage.get(layer)!;
    const rest = [...mass.keys()].filter((e) => !experts.includes(e));
    assert.ok(rest.every((e) => mass[e] <= Math.min(...experts.map((k) => mass[k]))), `${layer} keeps the most used`);
  }
  model.dispose();
});

test('keeping every expert (renumbered by usage) leaves the logits unchanged; keeping K shrinks the layers to K', async () => {
  const sources = randomSources([6, 4], FIXTURE_VOCAB, 3);
  const full = await tokenModel();
  const reference = logits(full, sources);
  const usage = measureUsage(full, sources, dir, ids);
  const all = keepExperts(full, keptExperts(usage, 6), 6);
  const permuted = Seq2Seq.fromWeights(all.config, all.weights);
  assert.ok(maxRelativeError(logits(permuted, sources), reference) < 1e-5);
  const two = keepExperts(full, keptExperts(usage, 2), 2);
  assert.equal(two.config.moe.numExperts, 2);
  assert.deepEqual(two.weights.get('encoder.layers.1.ffn.gate')!.shape, [32, 2]);
  assert.ok(!two.weights.has('encoder.layers.1.ffn.experts.2.wi'));
  const small = Seq2Seq.fromWeights(two.config, two.weights);
  assert.equal(logits(small, sources).length, reference.length);
  assert.throws(() => keepExperts(full, keptExperts(usage, 1), 1), /below the router's top-2/);
  [full, permuted, small].forEach((m) => m.dispose());
});
