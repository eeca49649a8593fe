// The backend a test run is for. `npm test` runs on wasm, the CPU backend every machine has;
// `npm run test:node` sets TASKMOE_BACKEND=node to run the engine, decoding, extraction, scheduler
// and server tests on TensorFlow's own kernels (tfjs-node, the code path of tfjs-node-gpu).
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { type BackendInfo, initBackend } from '../../src/backend/index.ts';

export type TestBackend = 'wasm' | 'node';

function chosen(): TestBackend {
  const v = process.env.TASKMOE_BACKEND ?? 'wasm';
  if (v !== 'wasm' && v !== 'node') throw new Error(`tests run on TASKMOE_BACKEND=wasm or node, not "${v}"`);
  return v;
}

export const TEST_BACKEND: TestBackend = chosen();
/** tf.getBackend()'s name for it. */
export const TEST_BACKEND_NAME = TEST_BACKEND === 'node' ? 'tensorflow' : 'wasm';

// Engine worker threads and CLI children started by a test inherit the choice.
process.env.TASKMOE_BACKEND = TEST_BACKEND;

/** Initialises this thread's backend as the run asks, and checks that tfjs really uses it. */
export async function useTestBackend(): Promise<BackendInfo> {
  const info = await initBackend({ force: TEST_BACKEND, log: () => {} });
  assert.equal(
    tf.getBackend(),
    TEST_BACKEND_NAME,
    `tests for TASKMOE_BACKEND=${TEST_BACKEND} run on tfjs's ${TEST_BACKEND_NAME} backend`,
  );
  assert.equal(info.gpu, false);
  return info;
}
