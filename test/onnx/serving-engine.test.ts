// Which library serves: each case initialises the backend in a worker thread of its own (the
// choice is per thread, as in engine workers) and reports the choice and the Translator's engine.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { startServerProcess } from '../../src/bench/server-process.ts';
import { ONNX_ENGINE } from '../helpers/backend.ts';
import { randomCheckpoint, tinyConfig } from '../helpers/engine.ts';
import { expectServedBackend } from '../helpers/server.ts';

let modelDir: string;
before(async () => {
  const { useTestBackend } = await import('../helpers/backend.ts');
  await useTestBackend();
  modelDir = await randomCheckpoint(tinyConfig('token', 'target'));
});

interface Report {
  serving: string;
  engine: string;
  lines: string[];
  translation: string;
}

function inWorker(force: string | undefined, overrides: Record<string, string | undefined>): Promise<Report> {
  const env = { ...process.env, ...overrides };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      (await import(workerData.tsxApi)).register();
      const { initBackend, servingEngine } = await import(workerData.backend);
      const { Translator } = await import(workerData.translator);
      const lines = [];
      await initBackend({ force: workerData.force, log: (m) => lines.push(m) });
      const t = await Translator.load(workerData.modelDir);
      const [out] = t.translate(['hello world'], { source: 'en', target: 'de' }, { maxLength: 5 });
      parentPort.postMessage({ serving: servingEngine(), engine: t.engine.constructor.name, lines, translation: out.text });
    })().catch((e) => parentPort.postMessage({ error: String(e) }));
    `,
    {
      eval: true,
      env,
      workerData: {
        tsxApi: import.meta.resolve('tsx/esm/api'),
        backend: new URL('../../src/backend/index.ts', import.meta.url).href,
        translator: new URL('../../src/translator/index.ts', import.meta.url).href,
        force,
        modelDir,
      },
    },
  );
  return new Promise<Report>((resolve, reject) => {
    worker.once('message', (m) => (m.error ? reject(new Error(m.error)) : resolve(m)));
    worker.once('error', reject);
  }).finally(() => worker.terminate());
}

test('TASKMOE_BACKEND=onnx serves on ONNX Runtime, and a forced tfjs backend on TensorFlow.js, with the same output', async () => {
  const onnx = await inWorker(undefined, { TASKMOE_BACKEND: 'onnx' });
  assert.equal(onnx.serving, 'onnx');
  assert.equal(onnx.engine, 'OrtEngine');
  assert.ok(
    onnx.lines.some((l) => /serving on ONNX Runtime.*\(forced\)/.test(l)),
    onnx.lines.join('\n'),
  );
  const wasm = await inWorker('wasm', { TASKMOE_BACKEND: undefined });
  assert.equal(wasm.serving, 'tfjs');
  assert.equal(wasm.engine, 'TfjsEngine');
  assert.equal(onnx.translation, wasm.translation);
});

test('unforced, on a machine without a GPU, serving defaults to ONNX Runtime', async () => {
  const report = await inWorker(undefined, { TASKMOE_BACKEND: undefined });
  assert.equal(report.serving, 'onnx');
  assert.equal(report.engine, 'OrtEngine');
});

test('a server on ONNX Runtime says so in /info (engine.backend "onnxruntime")', async () => {
  const server = await startServerProcess({
    model: modelDir,
    args: ['--workers', '1'],
    cli: { execArgv: ['--import', 'tsx'], entry: path.join(import.meta.dirname, '..', 'helpers', 'cli-entry.ts') },
    env: { ...process.env, TASKMOE_BACKEND: 'onnx' },
    readyTimeoutMs: 90_000,
  });
  try {
    await expectServedBackend(server, ONNX_ENGINE);
  } finally {
    await server.stop();
  }
});
