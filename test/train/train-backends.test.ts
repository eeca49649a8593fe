import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type BackendTiming,
  compareTrainingBackends,
  fastest,
  formatTimings,
  trainingCandidates,
} from '../../src/bench/train-backends.ts';
import type { TrainBenchResult } from '../../src/bench/train.ts';
import { chooseTrainingBackend } from '../../src/train/backend-choice.ts';
import { setUpTraining } from '../helpers/train.ts';

test("a backend is timed in a child process at the training config's batch size, against its own matMul ceiling", async () => {
  const { config } = setUpTraining({ batchTokens: 80 });
  const [wasm] = trainingCandidates(1);
  const [timing] = await compareTrainingBackends([wasm], { config, steps: 1 });
  assert.equal(timing.error, undefined);
  const result = timing.result!;
  assert.equal(result.backend, 'wasm');
  assert.equal(result.batchTokens, 80);
  assert.equal(result.runs.length, 1);
  assert.ok(result.runs[0].tokensPerSecond > 0 && result.runs[0].flops > 0 && result.ceiling > 0);
  assert.match(
    formatTimings([timing])[1],
    /1 worker: \d+ tok\/s, .* GFLOP\/s achieved = \d+% of the plain matMul ceiling/,
  );
});

test('a backend that does not load is reported with the reason, not thrown', async () => {
  const { config } = setUpTraining();
  const bogus = { backend: 'tpu' as 'wasm', label: 'tpu', workers: 1, env: {} };
  const [timing] = await compareTrainingBackends([bogus], { config, steps: 1 });
  assert.equal(timing.result, undefined);
  assert.match(timing.error!, /invalid backend 'tpu'/);
  assert.match(formatTimings([timing])[0], /^tpu: not available \(.*invalid backend/);
});

test('the fastest run wins across backends and worker counts; none when nothing ran', () => {
  const result = (backend: string, rates: number[]): TrainBenchResult => ({
    backend,
    dModel: 8,
    batchTokens: 64,
    steps: 1,
    ceiling: 1e9,
    runs: rates.map((r, i) => ({ workers: i + 1, tokensPerSecond: r, secondsPerStep: 1, flops: 1e8 })),
  });
  const [wasm, native] = trainingCandidates(2);
  const timings: BackendTiming[] = [
    { candidate: wasm, result: result('wasm', [200, 260]) },
    { candidate: native, result: result('tensorflow', [240]) },
  ];
  assert.deepEqual([fastest(timings)?.backend, fastest(timings)?.workers], ['wasm', 2]);
  timings[1].result!.runs[0].tokensPerSecond = 600;
  assert.deepEqual([fastest(timings)?.backend, fastest(timings)?.workers], ['node', 1]);
  assert.equal(fastest([{ candidate: native, error: 'not installed' }]), undefined);
});

test('a forced backend skips the timing', async () => {
  const saved = process.env.TASKMOE_BACKEND;
  process.env.TASKMOE_BACKEND = 'wasm';
  const lines: string[] = [];
  try {
    assert.deepEqual(await chooseTrainingBackend({ config: setUpTraining().config, log: (l) => lines.push(l) }), {});
    assert.deepEqual(lines, []);
  } finally {
    if (saved === undefined) delete process.env.TASKMOE_BACKEND;
    else process.env.TASKMOE_BACKEND = saved;
  }
});
