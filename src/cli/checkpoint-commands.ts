// Subcommands that write or describe checkpoints: init, extract, convert, average, inspect.
import * as fs from 'node:fs';
import { initBackend } from '../backend/index.ts';
import { averageCheckpoints } from '../models/average.ts';
import { CheckpointReader, writeCheckpoint } from '../models/checkpoint.ts';
import { parseConfig } from '../models/config.ts';
import { initWeights } from '../models/init.ts';
import { inspectModel } from '../models/inspect.ts';
import { verifyCheckpoint } from '../models/verify.ts';
import { Seq2Seq } from '../models/model.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { extractByUsage } from './extract-usage.ts';
import { UsageError, dtypeFlag, log, parse, positiveInt, required } from './flags.ts';

export async function cmdInit(args: string[]): Promise<number> {
  const { flags } = parse(args, {
    config: { type: 'string' },
    tokenizer: { type: 'string' },
    out: { type: 'string' },
    seed: { type: 'string' },
    dtype: { type: 'string' },
  });
  const configPath = required(flags, 'config');
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${configPath}: ${(err as Error).message}`);
  }
  const cfg = parseConfig(raw, configPath);
  const tokenizerPath = required(flags, 'tokenizer');
  const tokenizer = await Tokenizer.load(tokenizerPath);
  tokenizer.checkServes(cfg, configPath);
  await initBackend({ log });
  const weights = initWeights(cfg, positiveInt(flags, 'seed') ?? 1);
  const out = required(flags, 'out');
  await writeCheckpoint(out, cfg, weights, tokenizerPath, dtypeFlag(flags));
  for (const t of weights.values()) t.dispose();
  log(`wrote ${out}`);
  return 0;
}

export async function cmdExtract(args: string[]): Promise<number> {
  const usage = { 'by-usage': { type: 'boolean' }, calibration: { type: 'string' }, keep: { type: 'string' } } as const;
  const { flags } = parse(args, {
    model: { type: 'string' },
    source: { type: 'string' },
    target: { type: 'string' },
    out: { type: 'string' },
    dtype: { type: 'string' },
    ...usage,
  });
  if (flags['by-usage']) {
    const o = {
      model: required(flags, 'model'),
      source: required(flags, 'source'),
      target: required(flags, 'target'),
      out: required(flags, 'out'),
    };
    await initBackend({ log });
    return extractByUsage(
      {
        ...o,
        calibration: required(flags, 'calibration'),
        keep: Number(required(flags, 'keep')),
        dtype: dtypeFlag(flags),
      },
      log,
    );
  }
  const reader = await CheckpointReader.open(required(flags, 'model'));
  await verifyCheckpoint(reader, log);
  const dir = { source: required(flags, 'source'), target: required(flags, 'target') };
  const out = required(flags, 'out');
  await initBackend({ log });
  const sub = await Seq2Seq.loadSubnetwork(reader, dir);
  try {
    await writeCheckpoint(
      out,
      sub.config,
      sub.weights,
      reader.tokenizerPath,
      dtypeFlag(flags) ?? reader.dtype,
      reader.extraFiles,
    );
  } finally {
    sub.dispose();
  }
  const before = inspectModel(reader).params;
  const after = inspectModel(await CheckpointReader.open(out)).params;
  log(
    `wrote ${out}: decoder ${before.decoder} -> ${after.decoder} parameters, encoder ${before.encoder} -> ${after.encoder}, serving ${sub.config.pairs.join(', ')}`,
  );
  return 0;
}

export async function cmdConvert(args: string[]): Promise<number> {
  const { flags } = parse(args, { model: { type: 'string' }, out: { type: 'string' }, dtype: { type: 'string' } });
  const reader = await CheckpointReader.open(required(flags, 'model'));
  await verifyCheckpoint(reader, log);
  const out = required(flags, 'out');
  const dtype = dtypeFlag(flags);
  if (dtype === undefined) throw new UsageError('--dtype is required (float32 or float16)');
  await initBackend({ log });
  const weights = await reader.read(reader.shapes.keys());
  try {
    await writeCheckpoint(out, reader.config, weights, reader.tokenizerPath, dtype, reader.extraFiles);
  } finally {
    for (const t of weights.values()) t.dispose();
  }
  log(
    `wrote ${out} (${dtype}, ${(inspectModel(await CheckpointReader.open(out)).bytes / 1024 / 1024).toFixed(1)} MiB of weights)`,
  );
  return 0;
}

export async function cmdAverage(args: string[]): Promise<number> {
  const { flags, positionals } = parse(args, { out: { type: 'string' }, dtype: { type: 'string' } }, true);
  const out = required(flags, 'out');
  if (positionals.length === 0) throw new UsageError('average takes the checkpoint directories to average');
  await initBackend({ log });
  await averageCheckpoints(positionals, out, dtypeFlag(flags), log);
  log(`wrote ${out}: the mean of ${positionals.length} checkpoints`);
  return 0;
}

export async function cmdInspect(args: string[]): Promise<number> {
  const { flags, positionals } = parse(args, { json: { type: 'boolean' } }, true);
  if (positionals.length !== 1) throw new UsageError('inspect takes one checkpoint directory');
  const report = inspectModel(await CheckpointReader.open(positionals[0]));
  if (flags.json) {
    console.log(JSON.stringify(report, null, 2));
    return 0;
  }
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const p = report.params;
  console.log(
    `routing ${report.routing.encoder}/${report.routing.decoder}, ${report.moe.numExperts} experts, top-${report.moe.topK}, every ${report.moe.every} layers${report.extracted ? `, extracted for ${JSON.stringify(report.extracted)}` : ''}`,
  );
  console.log(`parameters: total ${p.total}, encoder ${p.encoder}, decoder ${p.decoder}, embeddings ${p.embeddings}`);
  console.log(`weights on disk: ${mb(report.bytes)} (${report.dtype})`);
  console.log('sub-networks (float32 size on the device):');
  for (const s of report.subnetworks) {
    const tasks =
      Object.entries(s.tasks)
        .map(([c, t]) => `${c}=${t}`)
        .join(' ') || 'shared';
    console.log(
      `  ${tasks.padEnd(24)} encoder ${s.params.encoder} decoder ${s.params.decoder} total ${s.params.total} (${mb(s.bytes)})  pairs ${s.pairs.join(' ')}`,
    );
  }
  return 0;
}
