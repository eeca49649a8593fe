// The imported Hugging Face fixtures (Marian, Marian with a target vocabulary of its own, M2M-100,
// NLLB-MoE) on ONNX Runtime against what Transformers computed: teacher-forced logits through the
// decoder-step graph's KV cache within 1e-4, identical greedy and beam-4 outputs.
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { CheckpointReader } from '../../src/models/checkpoint.ts';
import { targetVocabSize } from '../../src/models/config.ts';
import { decode } from '../../src/models/decoding.ts';
import { Seq2Seq } from '../../src/models/model.ts';
import { forcedPrefix } from '../../src/models/prompt.ts';
import { OrtEngine } from '../../src/onnx/engine.ts';
import { useTestBackend } from '../helpers/backend.ts';
import { HF_FIXTURES, importedFixture, outputTokens } from '../helpers/hf.ts';

before(useTestBackend);

for (const name of HF_FIXTURES) {
  test(`${name} on ONNX Runtime: logits within 1e-4, greedy and beam-4 outputs as Transformers'`, async () => {
    const { dir, ref } = await importedFixture(name);
    const reader = await CheckpointReader.open(dir);
    const model = await Seq2Seq.load(reader);
    const engine = OrtEngine.of(model);
    const dirn = { source: ref.source, target: ref.target };
    const vocab = targetVocabSize(reader.config);
    let worst = 0;
    for (const [i, { decoder, logits }] of ref.logits.entries()) {
      const state = engine.start([ref.sources[i]], [dirn]);
      decoder.forEach((token, t) => {
        const got = engine.logits(state, [token]);
        assert.equal(got.length, vocab);
        logits[t].forEach((v, j) => (worst = Math.max(worst, Math.abs(v - got[j]))));
      });
      engine.disposeState(state);
    }
    assert.ok(worst <= 1e-4, `largest logit difference ${worst}`);
    const forced = forcedPrefix(reader.config, dirn).length;
    const { decoderStart, eos } = reader.config.specialIds!;
    const opts = { bosId: decoderStart, eosId: eos, maxLength: ref.max_new_tokens - forced, lengthPenalty: 0 };
    const dirs = ref.sources.map(() => dirn);
    const greedy = decode(engine, ref.sources, dirs, { ...opts, beamSize: 1 });
    const beam = decode(engine, ref.sources, dirs, { ...opts, beamSize: 4 });
    ref.sources.forEach((_, i) => {
      assert.deepEqual(greedy[i][0].tokens, outputTokens(ref.greedy[i], forced, eos), `greedy ${i}`);
      assert.deepEqual(beam[i][0].tokens, outputTokens(ref.beam[i], forced, eos), `beam ${i}`);
    });
    engine.dispose();
    model.dispose();
    await fsp.rm(path.dirname(dir), { recursive: true, force: true });
  });
}
