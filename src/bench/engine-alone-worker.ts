// The engine-alone baseline of `taskmoe bench server`, in a fresh worker thread like a server's
// engine worker: measured in the benchmark's own thread, after the HTTP load runs, the same
// batches ran 10-15% slower than inside the server.
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../backend/index.ts';
import { parsePair } from '../models/config.ts';
import { Translator } from '../translator/index.ts';
import { TranslationScheduler } from '../translator/scheduler.ts';

export interface EngineAloneJob {
  model: string;
  pair: string;
  texts: string[];
  batch: number;
  seconds: number;
}

export type EngineAloneResult = { sentencesPerSecond: number } | { error: string };

/**
 * Sentences/s of decoding and detokenizing consecutive batches of the texts (tokenized before the
 * clock starts), two batches in flight as in a server's lane, so that the next batch joins the
 * running one as its sentences finish (TranslationScheduler, the engine worker's own).
 */
async function measure({ model, pair, texts, batch, seconds }: EngineAloneJob): Promise<number> {
  await initBackend({ log: () => {} });
  const dir = parsePair(pair);
  const translator = await Translator.load(model, dir);
  try {
    const sources = translator.encode(texts, dir);
    const scheduler = new TranslationScheduler(batch);
    await scheduler.translate(translator, sources.slice(0, batch), dir);
    let sentences = 0;
    let start = 0;
    const inFlight = new Set<Promise<void>>();
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      while (inFlight.size < 2) {
        const ids = Array.from({ length: batch }, (_, i) => sources[(start + i) % sources.length]);
        start = (start + batch) % sources.length;
        const done: Promise<void> = scheduler.translate(translator, ids, dir).then(() => {
          sentences += batch;
          inFlight.delete(done);
        });
        inFlight.add(done);
      }
      await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    return (sentences / (performance.now() - t0)) * 1000;
  } finally {
    translator.dispose();
  }
}

measure(workerData as EngineAloneJob).then(
  (sentencesPerSecond) => parentPort!.postMessage({ sentencesPerSecond } satisfies EngineAloneResult),
  (err: unknown) =>
    parentPort!.postMessage({
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    } satisfies EngineAloneResult),
);
