// Parity with Hugging Face Transformers: each tiny random model in test/fixtures/hf (written by
// scripts/hf-fixtures.py) is imported, and its logits, greedy and beam-4 outputs compared with what
// Transformers computed for the same inputs.
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { CheckpointReader } from '../../src/models/checkpoint.ts';
import { decode } from '../../src/models/decoding.ts';
import { Seq2Seq } from '../../src/models/model.ts';
import { forcedPrefix } from '../../src/models/prompt.ts';
import { loadTokenizer } from '../../src/tokenizer/model-tokenizer.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { HF_FIXTURES, importedFixture, outputTokens } from '../helpers/hf.ts';

before(useTestBackend);

for (const name of HF_FIXTURES) {
  test(`${name}: imported logits, greedy and beam-4 outputs match Transformers`, async () => {
    const { dir, ref } = await importedFixture(name);
    const reader = await CheckpointReader.open(dir);
    const model = await Seq2Seq.load(reader);
    const tokenizer = await loadTokenizer(dir, reader.config);
    const dirn = { source: ref.source, target: ref.target };
    const before = tf.memory().numTensors;
    // the tokenizer makes the same source ids
    ref.texts.forEach((text, i) => assert.deepEqual(tokenizer.encodeSource(text, ref.target, ref.source), ref.sources[i], `source ${i}: ${text}`));
    // logits of a teacher-forced prefix, to 1e-4
    let worst = 0;
    for (const [i, { decoder, logits }] of ref.logits.entries()) {
      const enc = model.encoder.encode(model.embeddings, [ref.sources[i]], [dirn]);
      const state = model.decoder.start(enc, [dirn]);
      const ours = model.decoder.forward(model.embeddings, state, [decoder]);
      const got = ours.arraySync() as number[][];
      logits.forEach((row, t) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - got[t][j])))));
      tf.dispose([enc.out, ours]);
      model.decoder.disposeState(state);
    }
    assert.ok(worst <= 1e-4, `largest logit difference ${worst}`);
    // greedy and beam 4, Transformers' max_new_tokens counting the forced token
    const forced = forcedPrefix(reader.config, dirn).length;
    const eos = tokenizer.eosId;
    const opts = { bosId: tokenizer.bosId, eosId: eos, maxLength: ref.max_new_tokens - forced, lengthPenalty: 0 };
    const dirs = ref.sources.map(() => dirn);
    const greedy = decode(model, ref.sources, dirs, { ...opts, beamSize: 1 });
    const beam = decode(model, ref.sources, dirs, { ...opts, beamSize: 4 });
    ref.sources.forEach((_, i) => {
      assert.deepEqual(greedy[i][0].tokens, outputTokens(ref.greedy[i], forced, eos), `greedy ${i}`);
      assert.deepEqual(beam[i][0].tokens, outputTokens(ref.beam[i], forced, eos), `beam ${i}`);
    });
    assert.equal(tf.memory().numTensors, before, 'decoding frees its tensors');
    model.dispose();
    await fsp.rm(path.dirname(dir), { recursive: true, force: true });
  });
}
