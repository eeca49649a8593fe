// The engine on random weights, for every routing kind: extraction keeps outputs, incremental
// decoding matches recomputation, beam 1 is greedy, and no tensor outlives decoding.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CheckpointReader } from '../../src/models/checkpoint.ts';
import type { ModelConfig, Routing } from '../../src/models/config.ts';
import { decode, type DecodeOptions, GreedyBatch, type Hypothesis, lengthGroups } from '../../src/models/decoding.ts';
import { Seq2Seq } from '../../src/models/model.ts';
import type { Direction } from '../../src/models/transformer.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { maxRelativeError, randomCheckpoint, randomSources, tinyConfig } from '../helpers/engine.ts';

before(useTestBackend);

const COMBINATIONS: [Routing, Routing][] = [
  ['dense', 'dense'], ['token', 'token'], ['sentence', 'sentence'], ['target', 'target'],
  ['pair', 'pair'], ['token', 'target'], ['token', 'pair'],
];
const SPECIAL: DecodeOptions = { bosId: 2, eosId: 3 };

/** Teacher-forced logits for `targets` ([B, T]): full recomputation in one decoder pass. */
function teacherForcedLogits(model: Seq2Seq, sources: number[][], dirs: Direction[], targets: number[][]): Float32Array {
  const enc = model.encoder.encode(model.embeddings, sources, dirs);
  const state = model.decoder.start(enc, dirs);
  const logits = model.decoder.forward(model.embeddings, state, targets);
  const values = logits.dataSync() as Float32Array;
  tf.dispose([logits, enc.out]);
  model.decoder.disposeState(state);
  return values;
}

/** The same logits, one position at a time through the key/value cache. */
function incrementalLogits(model: Seq2Seq, sources: number[][], dirs: Direction[], targets: number[][]): Float32Array {
  const enc = model.encoder.encode(model.embeddings, sources, dirs);
  const state = model.decoder.start(enc, dirs);
  const [b, t, v] = [targets.length, targets[0].length, model.config.vocabSize];
  const out = new Float32Array(b * t * v);
  for (let step = 0; step < t; step++) {
    const logits = model.decoder.forward(model.embeddings, state, targets.map((row) => [row[step]]));
    const values = logits.dataSync();
    for (let r = 0; r < b; r++) out.set(values.subarray(r * v, (r + 1) * v), (r * t + step) * v);
    logits.dispose();
  }
  tf.dispose(enc.out);
  model.decoder.disposeState(state);
  return out;
}

const tokensOf = (hyps: { tokens: number[] }[][]) => hyps.map((h) => h.map((x) => x.tokens));

for (const [encoder, decoder] of COMBINATIONS) {
  describe(`${encoder}/${decoder} routing`, () => {
    let cfg: ModelConfig;
    let reader: CheckpointReader;
    let full: Seq2Seq;
    const sources = randomSources([7, 3, 11, 5], 1000, 42);
    const targets = randomSources([6, 6, 6, 6], 1000, 9);
    // Two directions into the same target in one batch, plus one into another target.
    const dirs: Direction[] = [
      { source: 'en', target: 'de' }, { source: 'fr', target: 'de' },
      { source: 'en', target: 'de' }, { source: 'en', target: 'fr' },
    ];

    before(async () => {
      cfg = tinyConfig(encoder, decoder);
      reader = await CheckpointReader.open(await randomCheckpoint(cfg));
      full = await Seq2Seq.load(reader);
    });
    after(() => full.dispose());

    test('the extracted sub-network gives the full model\'s logits, greedy and beam outputs', async () => {
      const dir = { source: 'en', target: 'de' };
      const sub = await Seq2Seq.loadSubnetwork(reader, dir);
      try {
        const served = dirs.map((d, i) => [d, i] as const).filter(([d]) => sub.encoder.serves(d) && sub.decoder.serves(d));
        assert.ok(served.length >= 1);
        const src = served.map(([, i]) => sources[i]);
        const sd = served.map(([d]) => d);
        const err = maxRelativeError(
          teacherForcedLogits(sub, src, sd, served.map(([, i]) => targets[i])),
          teacherForcedLogits(full, src, sd, served.map(([, i]) => targets[i])),
        );
        assert.ok(err <= 1e-4, `relative logit error ${err}`);
        assert.deepEqual(tokensOf(decode(sub, src, sd, SPECIAL)), tokensOf(decode(full, src, sd, SPECIAL)));
        const beam = { ...SPECIAL, beamSize: 3, nBest: 3 };
        assert.deepEqual(tokensOf(decode(sub, src, sd, beam)), tokensOf(decode(full, src, sd, beam)));
        if (decoder === 'target' || decoder === 'pair') {
          assert.ok(sub.decoder.experts.every((e) => e === undefined), 'an extracted decoder must be dense');
          // Dropped: the unchosen experts of the one MoE layer, its gate and the task embedding.
          const { dModel: d, dFF, moe } = cfg;
          const tasks = decoder === 'target' ? cfg.languages.length : cfg.pairs.length;
          const dropped = 4 * ((moe.numExperts - moe.topK) * 2 * d * dFF + d * moe.numExperts + tasks * d);
          assert.equal(sub.decoder.bytes, full.decoder.bytes - dropped);
          assert.equal(sub.decoder.serves({ source: 'en', target: 'fr' }), false);
        } else {
          assert.equal(sub.decoder.bytes, full.decoder.bytes, 'a shared decoder is left as it is');
        }
      } finally {
        sub.dispose();
      }
    });

    test('incremental decoding with the key/value cache equals full recomputation', () => {
      const err = maxRelativeError(incrementalLogits(full, sources, dirs, targets), teacherForcedLogits(full, sources, dirs, targets));
      assert.ok(err <= 1e-4, `relative logit error ${err}`);
    });

    test('beam search of size 1 equals greedy search', () => {
      const greedy = decode(full, sources, dirs, SPECIAL);
      const beam1 = decode(full, sources, dirs, { ...SPECIAL, beamSize: 1 });
      assert.deepEqual(tokensOf(beam1), tokensOf(greedy));
      // The beam implementation itself (not the greedy shortcut) with one live hypothesis:
      const beam = decode(full, sources, dirs, { ...SPECIAL, beamSize: 4, nBest: 4 });
      beam.forEach((hyps, b) => {
        assert.ok(hyps.length >= 1 && hyps.length <= 4);
        for (let i = 1; i < hyps.length; i++) assert.ok(hyps[i - 1].score >= hyps[i].score, 'n-best is sorted');
        assert.ok(hyps[0].score >= greedy[b][0].score - 1e-4, 'beam search never scores below greedy');
      });
    });

    test('greedy decoding of a batch, whose sentences finish at different steps and leave it, equals decoding each alone', () => {
      const baseline = tf.memory().numTensors;
      // Sources of 3 to 11 tokens get length limits of 15 to 27, so rows leave the batch at different steps.
      const batched = decode(full, sources, dirs, SPECIAL);
      const alone = sources.map((src, b) => decode(full, [src], [dirs[b]], SPECIAL)[0]);
      assert.deepEqual(tokensOf(batched), tokensOf(alone));
      batched.forEach(([h], b) => assert.ok(Math.abs(h.logProb - alone[b][0].logProb) <= 1e-3 * Math.max(1, Math.abs(h.logProb))));
      assert.equal(tf.memory().numTensors, baseline);
    });

    test('sentences that join a running greedy batch (continuous batching) decode as each alone', () => {
      const baseline = tf.memory().numTensors;
      // At step 0 sentence 0 (7 tokens) starts; at step 2 sentence 2 joins, longer (11 tokens: the
      // running rows' sources are padded) and limited to 6 output tokens, so it leaves first and the
      // source positions shrink back; at step 9 sentences 1 and 3 join with shorter sources.
      const joins = new Map<number, { i: number; maxLength?: number }[]>([[0, [{ i: 0 }]], [2, [{ i: 2, maxLength: 6 }]], [9, [{ i: 1 }, { i: 3 }]]]);
      const batch = new GreedyBatch<number>(full, SPECIAL);
      const joined: Hypothesis[] = [];
      let maxRows = 0;
      for (let step = 0; step === 0 || batch.size > 0 || step <= 9; step++) {
        for (const { i, maxLength } of joins.get(step) ?? []) batch.add([sources[i]], [dirs[i]], [i], maxLength);
        maxRows = Math.max(maxRows, batch.size);
        for (const { tag, hypothesis } of batch.step()) joined[tag] = hypothesis;
      }
      batch.dispose();
      assert.equal(maxRows, 3, 'sentence 2 left before 1 and 3 joined');
      const alone = sources.map((src, i) => decode(full, [src], [dirs[i]], { ...SPECIAL, maxLength: i === 2 ? 6 : undefined })[0][0]);
      assert.deepEqual(joined.map((h) => h.tokens), alone.map((h) => h.tokens));
      joined.forEach((h, i) => assert.ok(Math.abs(h.logProb - alone[i].logProb) <= 1e-3 * Math.max(1, Math.abs(h.logProb)), `sentence ${i}: ${h.logProb} vs ${alone[i].logProb}`));
      assert.equal(tf.memory().numTensors, baseline);
    });

    test('cancelled sentences leave a running greedy batch unreported; the others decode as each alone', () => {
      const baseline = tf.memory().numTensors;
      const batch = new GreedyBatch<number>(full, SPECIAL);
      batch.add(sources, dirs, sources.map((_, i) => i));
      const finished: Hypothesis[] = [];
      const collect = () => { for (const { tag, hypothesis } of batch.step()) finished[tag] = hypothesis; };
      collect();
      collect();
      batch.cancel((tag) => tag === 1 || tag === 3);
      assert.equal(batch.size, sources.length - 2 - finished.filter(Boolean).length);
      while (batch.size > 0) collect();
      batch.dispose();
      assert.equal(finished[1], undefined);
      assert.equal(finished[3], undefined);
      for (const i of [0, 2]) assert.deepEqual(finished[i].tokens, decode(full, [sources[i]], [dirs[i]], SPECIAL)[0][0].tokens, `sentence ${i}`);
      assert.equal(tf.memory().numTensors, baseline);
    });

    test('a batch encoded in length groups, out of length order, decodes as each sentence alone', () => {
      const mixed = randomSources([36, 3, 7, 5], 1000, 5);
      assert.ok(lengthGroups(mixed.map((s) => s.length).sort((a, b) => a - b)).length > 1, 'these lengths are encoded in more than one group');
      const baseline = tf.memory().numTensors;
      for (const beamSize of [1, 3]) {
        const batched = decode(full, mixed, dirs, { ...SPECIAL, beamSize, maxLength: 8 });
        const alone = mixed.map((src, b) => decode(full, [src], [dirs[b]], { ...SPECIAL, beamSize, maxLength: 8 })[0]);
        assert.deepEqual(tokensOf(batched), tokensOf(alone), `beam ${beamSize}`);
      }
      assert.equal(tf.memory().numTensors, baseline);
    });

    test('decoding stops at the length limit and frees every tensor it made', () => {
      const baseline = tf.memory().numTensors;
      const limited = decode(full, sources, dirs, { ...SPECIAL, maxLength: 4, ignoreEos: true });
      assert.ok(limited.every(([h]) => h.tokens.length === 4));
      decode(full, sources, dirs, { ...SPECIAL, beamSize: 3, nBest: 2 });
      assert.equal(tf.memory().numTensors, baseline);
    });
  });
}

test('extraction reads only the tensors it needs from disk', async () => {
  const cfg = tinyConfig('token', 'target');
  const reader = await CheckpointReader.open(await randomCheckpoint(cfg));
  const read: string[] = [];
  const original = reader.read.bind(reader);
  reader.read = async (names) => {
    const list = [...names];
    read.push(...list);
    return original(list);
  };
  const sub = await Seq2Seq.loadSubnetwork(reader, { source: 'en', target: 'de' });
  sub.dispose();
  const decoderExperts = read.filter((n) => n.startsWith('decoder.') && n.includes('.experts.'));
  const moeLayers = 1; // decoderLayers 2, every 2
  assert.equal(decoderExperts.length, moeLayers * cfg.moe.topK * 2, `read ${decoderExperts.join(', ')}`);
  // The token-routed encoder is shared, so all of its experts are read.
  assert.equal(read.filter((n) => n.startsWith('encoder.') && n.includes('.experts.')).length, cfg.moe.numExperts * 2);
  assert.ok(fs.existsSync(path.join(reader.dir, 'config.json')));
});

test('lengthGroups: one group for similar lengths, a split where padding costs more, and never worse than any other split', () => {
  assert.deepEqual(lengthGroups([10, 11, 12, 12]), [[0, 4]]);
  assert.deepEqual(lengthGroups([3, 3, 4, 80]), [[0, 3], [3, 4]]);
  assert.deepEqual(lengthGroups([]), []);
  // Exhaustive check against every way of cutting small sorted arrays.
  const cost = (lengths: number[], groups: [number, number][]) => groups.reduce((sum, [a, b]) => sum + 32 + (b - a) * lengths[b - 1] * (1 + lengths[b - 1] / 150), 0);
  let seed = 3;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let trial = 0; trial < 30; trial++) {
    const lengths = Array.from({ length: 1 + Math.floor(random() * 7) }, () => 1 + Math.floor(random() * 90)).sort((a, b) => a - b);
    const chosen = lengthGroups(lengths);
    assert.deepEqual(chosen.flatMap(([a, b]) => Array.from({ length: b - a }, (_, i) => a + i)), lengths.map((_, i) => i), 'the groups cover every source once, in order');
    for (let mask = 0; mask < 2 ** (lengths.length - 1); mask++) {
      const groups: [number, number][] = [];
      let start = 0;
      for (let i = 1; i <= lengths.length; i++) {
        if (i === lengths.length || mask & (1 << (i - 1))) {
          groups.push([start, i]);
          start = i;
        }
      }
      assert.ok(cost(lengths, chosen) <= cost(lengths, groups) + 1e-9, `${JSON.stringify(lengths)}: ${JSON.stringify(chosen)} costs more than ${JSON.stringify(groups)}`);
    }
  }
});
