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
/** tf.getBackend()'s name for each backend a thread or child process may be forced to. */
const TFJS_NAMES: Record<string, string> = { wasm: 'wasm', node: 'tensorflow', gpu: 'tensorflow', cpu: 'cpu' };
/** tf.getBackend()'s name for it: what a server's engine workers started by this run decode on. */
export const TEST_BACKEND_NAME = TFJS_NAMES[TEST_BACKEND];
/** How a server's engine names ONNX Runtime (/info's engine.backend), for tests that serve on it. */
export const ONNX_ENGINE = 'onnxruntime';

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

/**
 * Checks that a server decodes on `expected` (this run's tfjs backend unless a test serves on ONNX
 * Runtime): /info's engine.backend, and, for a server in this process, what each engine worker
 * reported when it started.
 */
export function checkEngineBackend(
  info: { engine: { backend?: string } },
  expected: string = TEST_BACKEND_NAME,
  workers?: ReadonlyArray<{ worker: number; backend?: string }>,
): void {
  const asked = `TASKMOE_BACKEND=${process.env.TASKMOE_BACKEND ?? '(unset)'}`;
  assert.equal(info.engine.backend, expected, `/info's engine.backend is the engine this run asked for (${asked})`);
  for (const w of workers ?? [])
    assert.equal(w.backend, expected, `engine worker ${w.worker} decodes on the engine this run asked for (${asked})`);
}

/**
 * Checks a CLI child's stderr: the tfjs backend it logged (if it used one) is the one `backend`
 * (a TASKMOE_BACKEND value) forces, and it did not serve on ONNX Runtime instead.
 */
export function checkLoggedBackend(stderr: string, backend: string): void {
  const expected = TFJS_NAMES[backend];
  const logged = /^taskmoe: tfjs backend (\S+)/m.exec(stderr)?.[1];
  if (expected === undefined || logged === undefined) return;
  const asked = `a CLI child run with TASKMOE_BACKEND=${backend}`;
  assert.equal(logged, expected, `${asked} uses tfjs's ${expected} backend`);
  assert.doesNotMatch(stderr, /serving on ONNX Runtime/, `${asked} decodes on TensorFlow.js`);
}
