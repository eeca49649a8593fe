// The tfjs backend is process-global and initBackend keeps its first result, so these tests run
// in order and share one state: failures first, then the cpu initialisation they lead up to.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { backendChoice, backendInfo, initBackend, type BackendInfo } from '../../src/backend/index.ts';

function isInstalled(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

function withEnv<T>(name: string, value: string, run: () => Promise<T>): Promise<T> {
  const saved = process.env[name];
  process.env[name] = value;
  return run().finally(() => {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  });
}

const quiet = () => {};

// An outer TASKMOE_BACKEND would change what the unforced calls below ask for.
delete process.env.TASKMOE_BACKEND;

test('nothing is initialised before initBackend', () => {
  assert.equal(backendInfo(), undefined);
});

test('an invalid force value is an error naming it and the allowed values', async () => {
  await assert.rejects(initBackend({ force: 'tpu', log: quiet }), /'tpu'.*gpu, node, wasm, cpu/);
  assert.equal(backendInfo(), undefined);
});

test('TASKMOE_BACKEND is the default for force, and is checked the same way', async () => {
  await withEnv('TASKMOE_BACKEND', 'cuda', async () => {
    await assert.rejects(initBackend({ log: quiet }), /'cuda'/);
  });
});

test('forcing gpu without @tensorflow/tfjs-node-gpu fails instead of falling back', async (t) => {
  if (isInstalled('@tensorflow/tfjs-node-gpu')) return t.skip('tfjs-node-gpu is installed here');
  await assert.rejects(initBackend({ force: 'gpu', log: quiet }), /@tensorflow\/tfjs-node-gpu.*not installed/);
  assert.equal(backendInfo(), undefined);
});

test('forcing cpu selects the cpu backend and logs one line', async () => {
  const lines: string[] = [];
  const info = await initBackend({ force: 'cpu', log: (msg) => lines.push(msg) });

  assert.deepEqual(info, { choice: 'cpu', name: 'cpu', package: '@tensorflow/tfjs-backend-cpu', gpu: false });
  assert.equal(tf.getBackend(), 'cpu');
  assert.equal(backendInfo(), info);
  assert.equal(backendChoice(), 'cpu', 'workers are told to force the same backend');
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /cpu.*GPU: no/);
});

test('later calls return the first result without logging again', async () => {
  const lines: string[] = [];
  const log = (msg: string) => lines.push(msg);
  const first = backendInfo();
  assert.equal(await initBackend({ log }), first);
  assert.equal(await initBackend({ force: 'cpu', log }), first);
  assert.deepEqual(lines, []);
});

test('a later call forcing another backend is an error, not a silent no-op', async () => {
  await assert.rejects(initBackend({ force: 'wasm', log: quiet }), /already initialised as cpu.*'wasm'/);
  assert.equal(tf.getBackend(), 'cpu');
});

interface WorkerReport {
  info: BackendInfo;
  sameObject: boolean;
  tfBackend: string;
  sum: number[];
  lines: string[];
}

test('works in a worker thread, where concurrent calls share one initialisation', async () => {
  // Workers do not inherit tsx's loader on Node 20, so the worker registers it itself.
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      (await import(workerData.tsxApi)).register();
      const { initBackend } = await import(workerData.backend);
      const tf = await import('@tensorflow/tfjs');
      const lines = [];
      const log = (msg) => lines.push(msg);
      const [a, b] = await Promise.all([initBackend({ force: 'wasm', log }), initBackend({ log })]);
      const sum = Array.from(await tf.add(tf.tensor([1, 2]), tf.tensor([3, 4])).data());
      parentPort.postMessage({ info: a, sameObject: a === b, tfBackend: tf.getBackend(), sum, lines });
    })();
    `,
    {
      eval: true,
      workerData: {
        tsxApi: import.meta.resolve('tsx/esm/api'),
        backend: new URL('../../src/backend/index.ts', import.meta.url).href,
      },
    },
  );
  const report = await new Promise<WorkerReport>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  await worker.terminate();

  assert.deepEqual(report.info, { choice: 'wasm', name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', gpu: false });
  assert.equal(report.sameObject, true);
  assert.equal(report.tfBackend, 'wasm');
  assert.deepEqual(report.sum, [4, 6]);
  assert.equal(report.lines.length, 1);
  // The worker's choice is its own: the main thread stays on cpu.
  assert.equal(tf.getBackend(), 'cpu');
});
