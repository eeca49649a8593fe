// An engine worker thread: its own tfjs backend, tokenizer and sub-network cache. It translates
// off the HTTP thread, so /healthz and /metrics answer while it decodes.
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend, servingEngine } from '../backend/index.ts';
import { parsePair } from '../models/config.ts';
import { servingEngineOf } from '../models/engine.ts';
import { SubnetworkCache } from '../models/subnetwork-cache.ts';
import { InputError, Translator } from '../translator/index.ts';
import { ServedModel } from '../translator/served-model.ts';
import { TranslationScheduler } from '../translator/scheduler.ts';
import type { CacheSnapshot, EngineWorkerData, FromWorker, ToWorker } from './engine-protocol.ts';

const port = parentPort!;
const data = workerData as EngineWorkerData;
const send = (msg: FromWorker) => port.postMessage(msg);
// ONNX Runtime sessions read their intra-op thread count here (this thread's copy of the environment).
process.env.TASKMOE_ONNX_THREADS = String(data.intraOpThreads);

async function main(): Promise<void> {
  await initBackend(); // logs which backend this worker runs and whether it uses a GPU
  const served = await ServedModel.open(data.modelDir);
  const cache = new SubnetworkCache(served.set, {
    budgetBytes: data.cacheBytes,
    onEvent: (e) => send({ type: 'cache', event: e.type, ...(e.type === 'load' ? { seconds: e.seconds } : {}) }),
  });
  const snapshot = (): CacheSnapshot => {
    const { entries, bytes, hits, misses, evictions } = cache.stats();
    return { entries, bytes, hits, misses, evictions, entryBytes: cache.entryBytes() };
  };
  // ONNX Runtime builds a model part's sessions with its first engine: here, not on the first request.
  await cache.warm(data.warmPairs.map(parsePair), (model) => servingEngineOf(model));
  send({
    type: 'ready',
    cache: snapshot(),
    tensors: tf.memory().numTensors,
    backend: servingEngine() === 'onnx' ? 'onnxruntime' : tf.getBackend(),
  });

  // Batches of one pair decode together, joining while earlier ones run (continuous batching);
  // messages are taken between decoder steps, so a new batch never waits for a running one to end.
  const scheduler = new TranslationScheduler(data.maxRows);
  const cancels = new Map<number, AbortController>();
  port.on('message', async (msg: ToWorker) => {
    if (msg.type === 'cancel') {
      cancels.get(msg.id)?.abort();
      return;
    }
    if (msg.type === 'load') {
      try {
        await cache.warm([parsePair(msg.pair)]);
        send({ type: 'loaded', id: msg.id, cache: snapshot(), tensors: tf.memory().numTensors });
      } catch (err) {
        send({ type: 'error', id: msg.id, message: (err as Error).message, input: false });
      }
      return;
    }
    const started = performance.now();
    const cancel = new AbortController();
    cancels.set(msg.id, cancel);
    let lease;
    try {
      const { direction, options } = msg.key;
      lease = await cache.acquire(direction);
      const translations = await scheduler.translate(
        new Translator(lease.model, served.tokenizerFor(direction)),
        msg.sources,
        direction,
        options,
        cancel.signal,
      );
      send({
        type: 'result',
        id: msg.id,
        translations,
        durationMs: performance.now() - started,
        cache: snapshot(),
        tensors: tf.memory().numTensors,
      });
    } catch (err) {
      // The pool answered a cancelled batch itself.
      if (!cancel.signal.aborted)
        send({ type: 'error', id: msg.id, message: (err as Error).message, input: err instanceof InputError });
    } finally {
      cancels.delete(msg.id);
      lease?.release();
    }
  });
}

main().catch((err: unknown) => send({ type: 'fatal', message: err instanceof Error ? err.message : String(err) }));
