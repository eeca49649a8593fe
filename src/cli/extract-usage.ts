// `taskmoe extract --by-usage --calibration FILE --keep K --model DIR --source xx --target yy --out DIR2`
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { CheckpointReader, type StorageDtype, writeCheckpoint } from '../models/checkpoint.ts';
import { inspectModel } from '../models/inspect.ts';
import { keepExperts, keptExperts, measureUsage, usageComponents } from '../models/usage.ts';
import { Translator } from '../translator/index.ts';

export interface UsageExtractOptions {
  model: string;
  source: string;
  target: string;
  out: string;
  /** A text file, one sentence per line, or a TSV whose first column is the source. */
  calibration: string;
  keep: number;
  dtype?: StorageDtype;
}

/** Writes the sub-network; returns the exit status. */
export async function extractByUsage(o: UsageExtractOptions, log: (m: string) => void): Promise<number> {
  if (!Number.isInteger(o.keep) || o.keep < 1) throw new Error(`--keep must be a positive integer, got ${o.keep}`);
  const reader = await CheckpointReader.open(o.model);
  const dir = { source: o.source, target: o.target };
  if (!fs.existsSync(o.calibration)) throw new Error(`calibration file ${o.calibration} not found`);
  const texts = fs
    .readFileSync(o.calibration, 'utf8')
    .split('\n')
    .map((l) => l.split('\t')[0])
    .filter((l) => l.trim() !== '');
  if (texts.length === 0) throw new Error(`calibration file ${o.calibration} has no sentences`);
  const translator = await Translator.load(o.model, dir);
  const model = translator.model;
  usageComponents(model.config); // refuses sentence routing
  const sources = translator.encode(texts, dir);
  const { bosId, eosId } = translator.tokenizer;
  const usage = measureUsage(model, sources, dir, { bosId, eosId });
  if (usage.size === 0)
    throw new Error('the model has no token-routed experts; --by-usage applies to token-routed MoE models');
  const kept = keptExperts(usage, o.keep);
  for (const [layer, mass] of usage) {
    const total = mass.reduce((a, b) => a + b, 0);
    const share = kept.get(layer)!.reduce((a, e) => a + mass[e], 0) / total;
    log(
      `${layer}: keeps experts ${kept.get(layer)!.join(',')} of ${mass.length}, ${(100 * share).toFixed(1)}% of the gate mass over ${texts.length} sentences`,
    );
  }
  const { config, weights } = keepExperts(model, kept, o.keep);
  try {
    await writeCheckpoint(o.out, config, weights, reader.tokenizerPath, o.dtype ?? reader.dtype, reader.extraFiles);
  } finally {
    tf.dispose([...weights.values()]);
    translator.dispose();
  }
  const before = inspectModel(reader);
  const after = inspectModel(await CheckpointReader.open(o.out));
  log(
    `wrote ${o.out}: ${before.params.total} -> ${after.params.total} parameters (${(after.bytes / 1024 / 1024).toFixed(1)} MiB), serving ${config.pairs.join(', ')}`,
  );
  return 0;
}
