// `taskmoe bench engine|server|train|faults`: each benchmark's flags, then its module (loaded on demand).
import * as fs from 'node:fs';
import { initBackend } from '../backend/index.ts';
import { UsageError, listFlag, log, parse, positiveInt } from './flags.ts';

export async function cmdBench(args: string[]): Promise<number> {
  const [what, ...rest] = args;
  if (what === 'server') {
    const { flags } = parse(rest, {
      model: { type: 'string' },
      data: { type: 'string' },
      seconds: { type: 'string' },
      rounds: { type: 'string' },
      concurrency: { type: 'string' },
      workers: { type: 'string' },
      'workers-only': { type: 'boolean' },
      settings: { type: 'string' },
      json: { type: 'string' },
    });
    await initBackend({ log });
    const { benchServer } = await import('../bench/server.ts');
    await benchServer({
      model: flags.model as string | undefined,
      data: flags.data as string | undefined,
      seconds: positiveInt(flags, 'seconds'),
      rounds: positiveInt(flags, 'rounds'),
      concurrency: positiveInt(flags, 'concurrency'),
      workers: positiveInt(flags, 'workers'),
      workersOnly: flags['workers-only'] === true,
      settings: typeof flags.settings === 'string' ? flags.settings.split(';') : undefined,
      json: flags.json as string | undefined,
    });
    return 0;
  }
  if (what === 'train') {
    const { flags } = parse(rest, {
      steps: { type: 'string' },
      'batch-tokens': { type: 'string' },
      vocab: { type: 'string' },
      'd-model': { type: 'string' },
      workers: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'string' },
      profile: { type: 'boolean' },
    });
    const options = {
      steps: positiveInt(flags, 'steps'),
      batchTokens: positiveInt(flags, 'batch-tokens'),
      vocab: positiveInt(flags, 'vocab'),
      dModel: positiveInt(flags, 'd-model'),
      workers: positiveInt(flags, 'workers'),
      config: flags.config as string | undefined,
    };
    if ((process.env.TASKMOE_BACKEND ?? '') === '') {
      const { benchTrainBackends } = await import('../bench/train-backends.ts');
      await benchTrainBackends({ ...options, json: flags.json as string | undefined });
      return 0;
    }
    await initBackend({ log });
    const { benchTrain } = await import('../bench/train.ts');
    const result = await benchTrain({ ...options, profile: flags.profile === true });
    if (typeof flags.json === 'string') fs.writeFileSync(flags.json, JSON.stringify(result, null, 2) + '\n');
    return 0;
  }
  if (what === 'faults') {
    const { flags } = parse(rest, { model: { type: 'string' }, workers: { type: 'string' } });
    await (
      await import('../bench/faults.ts')
    ).benchFaults({ model: flags.model as string | undefined, workers: positiveInt(flags, 'workers') });
    return 0;
  }
  if (what !== 'engine')
    throw new UsageError('usage: taskmoe bench engine|server|train|faults ... (see taskmoe --help)');
  const { flags } = parse(rest, {
    json: { type: 'string' },
    quick: { type: 'boolean' },
    configs: { type: 'string' },
    batch: { type: 'string' },
    variants: { type: 'string' },
    reps: { type: 'string' },
    onnx: { type: 'boolean' },
    threads: { type: 'string' },
  });
  if (flags.threads !== undefined && flags.onnx !== true)
    throw new UsageError('--threads goes with --onnx (the intra-op threads of ONNX Runtime)');
  const [json, configs, variants] = [
    flags.json as string | undefined,
    listFlag(flags, 'configs'),
    listFlag(flags, 'variants'),
  ];
  const batchSizes = listFlag(flags, 'batch')?.map((b) => positiveInt({ batch: b }, 'batch')!);
  const threads = listFlag(flags, 'threads')?.map((t) => positiveInt({ threads: t }, 'threads')!);
  const options = {
    json,
    quick: flags.quick === true,
    configs,
    batchSizes,
    variants,
    reps: positiveInt(flags, 'reps'),
    log: (s: string) => console.log(s),
  };
  await initBackend({ log });
  if (flags.onnx === true) {
    await (await import('../bench/engine/onnx.ts')).benchEngineOnnx({ ...options, threads });
    return 0;
  }
  await (await import('../bench/engine/index.ts')).benchEngine(options);
  return 0;
}
