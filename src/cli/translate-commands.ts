// Subcommands that translate with a model: translate (text or stdin) and eval (BLEU and chrF on a corpus).
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { initBackend } from '../backend/index.ts';
import { DEFAULT_MODEL_DIR, Translator } from '../translator/index.ts';
import { translateLines } from '../text/translate-lines.ts';
import { evaluate, formatEvaluation } from '../eval/evaluate.ts';
import { UsageError, listFlag, log, parse, positiveInt, required } from './flags.ts';

async function* inputLines(texts: string[]): AsyncGenerator<string> {
  if (texts.length > 0) {
    yield* texts;
    return;
  }
  for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) yield line;
}

export async function cmdTranslate(args: string[]): Promise<number> {
  const { flags, positionals } = parse(
    args,
    {
      model: { type: 'string' },
      source: { type: 'string' },
      target: { type: 'string' },
      beam: { type: 'string' },
      'n-best': { type: 'string' },
      'max-length': { type: 'string' },
      'batch-size': { type: 'string' },
    },
    true,
  );
  const dir = { source: required(flags, 'source'), target: required(flags, 'target') };
  const modelDir = (flags.model as string | undefined) ?? DEFAULT_MODEL_DIR;
  if (flags.model === undefined && !fs.existsSync(modelDir))
    throw new Error(`no --model given and the built-in demo model is missing at ${modelDir}`);
  const opts = {
    beamSize: positiveInt(flags, 'beam') ?? 1,
    nBest: positiveInt(flags, 'n-best') ?? 1,
    maxLength: positiveInt(flags, 'max-length'),
    batchSize: positiveInt(flags, 'batch-size') ?? 32,
  };
  if (opts.nBest > opts.beamSize)
    throw new UsageError(`--n-best (${opts.nBest}) cannot exceed --beam (${opts.beamSize})`);
  await initBackend({ log });
  const translator = await Translator.load(modelDir, dir);
  try {
    // Lines are translated a batch at a time so stdin streams, and printed in input order.
    let pending: string[] = [];
    const flush = async () => {
      // Long lines are cut into sentences the model takes, so no line fails the file.
      for (const t of await translateLines(translator, pending, dir, opts)) {
        console.log(t.text);
        for (const alt of t.alternatives) console.log(`\t${alt}`);
      }
      pending = [];
    };
    for await (const line of inputLines(positionals)) {
      pending.push(line);
      if (pending.length === opts.batchSize) await flush();
    }
    if (pending.length > 0) await flush();
  } finally {
    translator.dispose();
  }
  return 0;
}

export async function cmdEval(args: string[]): Promise<number> {
  const { flags } = parse(args, {
    model: { type: 'string' },
    data: { type: 'string' },
    json: { type: 'string' },
    hypotheses: { type: 'string' },
    beam: { type: 'string' },
    'batch-size': { type: 'string' },
    languages: { type: 'string' },
  });
  await initBackend({ log });
  const result = await evaluate({
    model: (flags.model as string | undefined) ?? DEFAULT_MODEL_DIR,
    data: required(flags, 'data'),
    json: flags.json as string | undefined,
    hypotheses: flags.hypotheses as string | undefined,
    beam: positiveInt(flags, 'beam'),
    batchSize: positiveInt(flags, 'batch-size'),
    languages: listFlag(flags, 'languages'),
  });
  console.log(formatEvaluation(result));
  return 0;
}
