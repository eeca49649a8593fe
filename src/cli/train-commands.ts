// Subcommands that train: a model (train) and its shared SentencePiece vocabulary (tokenizer train).
import { initBackend } from '../backend/index.ts';
import { trainTokenizer } from '../tokenizer/train.ts';
import { train } from '../train/index.ts';
import { UsageError, listFlag, log, nonNegativeInt, parse, positiveInt, required } from './flags.ts';

export async function cmdTrain(args: string[]): Promise<number> {
  const { flags } = parse(args, {
    config: { type: 'string' },
    data: { type: 'string', multiple: true },
    out: { type: 'string' },
    steps: { type: 'string' },
    resume: { type: 'boolean' },
    workers: { type: 'string' },
    init: { type: 'string' },
    'init-step': { type: 'string' },
  });
  if (flags['init-step'] !== undefined && flags.init === undefined)
    throw new UsageError('--init-step needs --init MODEL_DIR');
  const { chooseTrainingBackend } = await import('../train/backend-choice.ts');
  const decision = await chooseTrainingBackend({
    config: required(flags, 'config'),
    workers: positiveInt(flags, 'workers'),
    log,
  });
  await initBackend({ force: decision.backend, log });
  const result = await train({
    config: required(flags, 'config'),
    data: flags.data as unknown as string[] | undefined,
    out: required(flags, 'out'),
    steps: positiveInt(flags, 'steps'),
    resume: flags.resume === true,
    workers: decision.workers ?? positiveInt(flags, 'workers'),
    init:
      flags.init === undefined
        ? undefined
        : { model: String(flags.init), step: nonNegativeInt(flags, 'init-step') ?? 0 },
  });
  log(
    `${result.interrupted ? 'interrupted' : 'finished'} at step ${result.step}; checkpoint in ${flags.out}/latest/model`,
  );
  return result.interrupted ? 130 : 0;
}

export async function cmdTokenizer(args: string[]): Promise<number> {
  const [what, ...rest] = args;
  if (what !== 'train')
    throw new UsageError('usage: taskmoe tokenizer train --data DIR --vocab-size N --out FILE.model');
  const { flags } = parse(rest, {
    data: { type: 'string', multiple: true },
    'vocab-size': { type: 'string' },
    out: { type: 'string' },
    languages: { type: 'string' },
    'sentences-per-language': { type: 'string' },
    seed: { type: 'string' },
    'character-coverage': { type: 'string' },
  });
  const vocabSize = positiveInt(flags, 'vocab-size');
  if (vocabSize === undefined) throw new UsageError('--vocab-size is required');
  const result = await trainTokenizer({
    dataDir: (flags.data as unknown as string[] | undefined) ?? [required(flags, 'data')],
    vocabSize,
    out: required(flags, 'out'),
    languages: listFlag(flags, 'languages'),
    sentencesPerLanguage: positiveInt(flags, 'sentences-per-language'),
    seed: positiveInt(flags, 'seed'),
    characterCoverage: flags['character-coverage'] === undefined ? undefined : Number(flags['character-coverage']),
  });
  log(`wrote ${flags.out}: ${result.languages.join(',')} from ${result.sentences} sentences`);
  return 0;
}
