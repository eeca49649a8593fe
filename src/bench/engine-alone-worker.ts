// The engine-alone baseline of `taskmoe bench server`, in a fresh worker thread like a server's
// engine worker: measured in the benchmark's own thread, after the HTTP load runs, the same
// batches ran 10-15% slower than inside the server.
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../backend/index.ts';
import { parsePair } from '../models/config.ts';
import { Translator } from '../translator/index.ts';

export interface EngineAloneJob {
  model: string;
  pair: string;
  texts: string[];
  batch: number;
  seconds: number;
}

export type EngineAloneResult = { sentencesPerSecond: number } | { error: string };

/** Sentences/s of decoding and detokenizing consecutive batches of the texts (tokenized before the clock starts). */
async function measure({ model, pair, texts, batch, seconds }: EngineAloneJob): Promise<number> {
  await initBackend({ log: () => {} });
  const dir = parsePair(pair);
  const translator = await Translator.load(model, dir);
  try {
    const sources = translator.encode(texts, dir);
    translator.translateIds(sources.slice(0, batch), dir, { batchSize: batch });
    let sentences = 0;
    let elapsed = 0;
    for (let start = 0; elapsed < seconds * 1000; start = (start + batch) % sources.length) {
      const ids = Array.from({ length: batch }, (_, i) => sources[(start + i) % sources.length]);
      const t0 = performance.now();
      translator.translateIds(ids, dir, { batchSize: batch });
      elapsed += performance.now() - t0;
      sentences += batch;
    }
    return (sentences / elapsed) * 1000;
  } finally {
    translator.dispose();
  }
}

measure(workerData as EngineAloneJob).then(
  (sentencesPerSecond) => parentPort!.postMessage({ sentencesPerSecond } satisfies EngineAloneResult),
  (err: unknown) => parentPort!.postMessage({ error: err instanceof Error ? err.stack ?? err.message : String(err) } satisfies EngineAloneResult),
);
