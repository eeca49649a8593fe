// A translation request as validation produces it. It travels unchanged from here through the
// batcher's queue, a batch and an engine worker, and back to the response, as TGI's router carries
// its ValidGenerateRequest: nothing downstream re-reads the body or parses a key back.
import type { BatchItem, QueueKey } from '../batching/index.ts';
import { pairKey } from '../models/config.ts';
import type { Direction } from '../models/transformer.ts';
import { type TranslateOptions, type Translation, checkSourceLength } from '../translator/index.ts';
import type { ServedModel } from '../translator/served-model.ts';
import type { ServerSettings } from './settings.ts';

/** The body of POST /translate (LibreTranslate's API), as the schema admits it. */
export interface TranslateBody {
  q: string | string[];
  source: string;
  target: string;
  format?: 'text';
  alternatives?: number;
  beam_size?: number;
  max_length?: number;
  api_key?: string;
}

export interface TranslateResponse {
  translatedText: string | string[];
  alternatives?: string[] | string[][];
}

/** What sentences must share to be batched together: a direction and the decoding options. */
export interface BatchKey extends QueueKey {
  readonly direction: Direction;
  /** `source-target`, the batcher's admission group and the metrics' label. */
  readonly pair: string;
  readonly options: TranslateOptions;
}

/** One text of a request, tokenized: the batcher's item. */
export interface SourceText extends BatchItem {
  readonly ids: number[];
}

export interface TranslationRequest {
  readonly key: BatchKey;
  /** One per text of `q`, in order. */
  readonly texts: readonly SourceText[];
  /** Alternatives to answer per text (nBest - 1). */
  readonly alternatives: number;
  /** `q` was one string, so the response holds strings rather than arrays. */
  readonly single: boolean;
  /** Milliseconds since the epoch: validation's end plus the server's timeout (tokenizing is not queue time). */
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

export function translateSchema(s: ServerSettings, maxLength: number) {
  return {
    body: {
      type: 'object',
      required: ['q', 'source', 'target'],
      additionalProperties: false,
      properties: {
        q: {
          anyOf: [
            { type: 'string', minLength: 1, maxLength: s.maxTextChars },
            { type: 'array', minItems: 1, maxItems: s.maxTexts, items: { type: 'string', minLength: 1, maxLength: s.maxTextChars } },
          ],
        },
        source: { type: 'string', minLength: 1 },
        target: { type: 'string', minLength: 1 },
        format: { type: 'string', enum: ['text'] },
        alternatives: { type: 'integer', minimum: 0, maximum: s.maxAlternatives },
        beam_size: { type: 'integer', minimum: 1, maximum: s.maxBeam },
        max_length: { type: 'integer', minimum: 1, maximum: maxLength },
        // Accepted so that LibreTranslate clients work unchanged; taskmoe has no API keys.
        api_key: { type: 'string' },
      },
    },
    params: {
      type: 'object',
      properties: { source: { type: 'string' }, target: { type: 'string' } },
    },
  };
}

/**
 * The typed request of a body the schema admitted; throws InputError naming what the model cannot
 * serve (the direction, a text too long once tokenized).
 */
export function validateRequest(
  body: TranslateBody,
  model: ServedModel,
  { timeoutMs, signal }: { timeoutMs: number; signal: AbortSignal },
): TranslationRequest {
  const direction = { source: body.source, target: body.target };
  model.checkDirection(direction);
  const [cfg, tokenizer] = [model.configFor(direction), model.tokenizerFor(direction)];
  const alternatives = body.alternatives ?? 0;
  const options: TranslateOptions = {
    beamSize: Math.max(body.beam_size ?? 1, alternatives + 1),
    nBest: alternatives + 1,
    maxLength: body.max_length,
  };
  const q = Array.isArray(body.q) ? body.q : [body.q];
  const texts = q.map((text, i) => {
    const ids = tokenizer.encodeSource(text, direction.target, direction.source);
    checkSourceLength(ids, cfg.maxLength, `q[${i}]`);
    return { ids, tokens: ids.length };
  });
  return { key: batchKeyOf(direction, options), texts, alternatives, single: !Array.isArray(body.q), deadline: Date.now() + timeoutMs, signal };
}

/** The response to a request, from its texts' translations in order. */
export function responseOf(request: TranslationRequest, results: Translation[]): TranslateResponse {
  const translatedText = results.map((r) => r.text);
  const response: TranslateResponse = { translatedText: request.single ? translatedText[0] : translatedText };
  if (request.alternatives > 0) response.alternatives = request.single ? results[0].alternatives : results.map((r) => r.alternatives);
  return response;
}
