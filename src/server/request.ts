// A translation request as the batcher sees it: sentences of one direction, tokenized and checked,
// with one batch key. LibreTranslate's routes (libretranslate.ts) turn a body into texts, the text
// pipeline (text-service.ts) cuts texts into sentences, and each direction's sentences become one
// TranslationRequest here, which travels unchanged through the batcher's queue, a batch and an
// engine worker, as TGI's router carries its ValidGenerateRequest.
import type { BatchItem, QueueKey } from '../batching/index.ts';
import { type ModelConfig, pairKey } from '../models/config.ts';
import type { Direction } from '../models/transformer.ts';
import { type TranslateOptions, checkDirection, checkSourceLength } from '../translator/index.ts';

/** What sentences must share to be batched together: a direction and the decoding options. */
export interface BatchKey extends QueueKey {
  readonly direction: Direction;
  /** `source-target`, the batcher's admission group and the metrics' label. */
  readonly pair: string;
  readonly options: TranslateOptions;
}

/** One sentence, tokenized: the batcher's item. */
export interface SourceText extends BatchItem {
  readonly ids: number[];
}

export interface TranslationRequest {
  readonly key: BatchKey;
  /** One per sentence, in order. */
  readonly texts: readonly SourceText[];
  /** Milliseconds since the epoch: when the request's first sentences were queued plus the server's timeout. */
  readonly deadline: number;
  /** Aborts when the client goes away. */
  readonly signal: AbortSignal;
}

/** The batch key of a direction and options; requests with equal options get equal keys. */
export function batchKeyOf(direction: Direction, options: TranslateOptions): BatchKey {
  const pair = pairKey(direction.source, direction.target);
  const { beamSize = 1, nBest = 1, maxLength } = options;
  return { direction, pair, options, id: JSON.stringify([pair, beamSize, nBest, maxLength ?? null]) };
}

/**
 * The typed request of tokenized sentences; throws InputError naming what the model cannot serve
 * (the direction, a sentence too long: the text pipeline cuts sentences to fit, so that is a bug).
 */
export function sentenceRequest(
  cfg: ModelConfig,
  direction: Direction,
  ids: number[][],
  options: TranslateOptions,
  { deadline, signal }: { deadline: number; signal: AbortSignal },
): TranslationRequest {
  checkDirection(cfg.languages, cfg.pairs, direction);
  const texts = ids.map((s, i) => {
    checkSourceLength(s, cfg.maxLength, `sentence ${i}`);
    return { ids: s, tokens: s.length };
  });
  return { key: batchKeyOf(direction, options), texts, deadline, signal };
}
