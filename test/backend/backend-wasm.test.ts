import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/backend/index.ts';

test('the wasm backend loads without leaving its process-wide crash handlers behind', async () => {
  const before = {
    uncaught: process.listenerCount('uncaughtException'),
    rejection: process.listenerCount('unhandledRejection'),
  };
  const info = await initBackend({ force: 'wasm', log: () => {} });
  assert.equal(info.name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  // The wasm runtime is up: a matMul runs.
  const y = tf.matMul(tf.ones([2, 3]), tf.ones([3, 2]));
  assert.deepEqual(y.arraySync(), [
    [3, 3],
    [3, 3],
  ]);
  assert.equal(process.listenerCount('uncaughtException'), before.uncaught);
  assert.equal(process.listenerCount('unhandledRejection'), before.rejection);
});
