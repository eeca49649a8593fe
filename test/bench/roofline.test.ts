import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sentenceFlops } from '../../src/bench/roofline.ts';
import { OUT_LEN, SRC_LEN, benchConfigs, stepCost, variantConfig } from '../../src/bench/engine/costs.ts';

// stepCost averages the self-attention length over OUT_LEN steps; sentenceFlops sums it step by
// step. Over the engine benchmark's fixed lengths the two must agree exactly.
test("sentenceFlops agrees with the engine benchmark's per-token costs at its fixed lengths", () => {
  for (const cfg of Object.values(benchConfigs(false))) {
    for (const v of ['dense', 'task-extracted'] as const) {
      const c = stepCost(cfg, v, 1);
      const expected = OUT_LEN * (c.flopsPerToken + c.startFlopsPerToken + c.encoderFlopsPerToken);
      assert.equal(SRC_LEN, OUT_LEN); // encoderFlopsPerToken is per source token = per target token
      assert.ok(Math.abs(sentenceFlops(variantConfig(cfg, v), SRC_LEN, OUT_LEN) - expected) < 1e-6 * expected, `${v}`);
    }
  }
});

test('sentenceFlops grows with the source and the output', () => {
  const cfg = benchConfigs(true).wmt32;
  assert.ok(sentenceFlops(cfg, 20, 10) > sentenceFlops(cfg, 10, 10));
  assert.ok(sentenceFlops(cfg, 10, 20) > sentenceFlops(cfg, 10, 10));
});
