// The text-in, text-out API over a model: tokenization, validation of what a caller asks for,
// length-sorted batches, and detokenization. It knows nothing of HTTP.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CheckpointReader } from '../models/checkpoint.ts';
import { pairKey } from '../models/config.ts';
import { decode, type DecodeOptions, type Hypothesis } from '../models/decoding.ts';
import { type DecoderEngine, servingEngineOf } from '../models/engine.ts';
import { Seq2Seq } from '../models/model.ts';
import type { Direction } from '../models/transformer.ts';
import { type TextTokenizer, loadTokenizer } from '../tokenizer/model-tokenizer.ts';
import { verifyCheckpoint } from '../models/verify.ts';

/** The demo model shipped in the repository, used when no model is given. */
export const DEFAULT_MODEL_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'models',
  'demo',
);

/** A caller's mistake (unknown language, unsupported pair, text too long): reported, never fatal. */
export class InputError extends Error {}

export interface TranslateOptions {
  beamSize?: number;
  /** Hypotheses per text; the best is the translation, the rest are alternatives. */
  nBest?: number;
  lengthPenalty?: number;
  /** Longest output in tokens (default: follows each source's length). */
  maxLength?: number;
  /** Sentences decoded together. */
  batchSize?: number;
}

export interface Translation {
  text: string;
  alternatives: string[];
  /** Tokens generated for the best hypothesis. */
  generatedTokens: number;
}

export class Translator {
  /** What decodes: the model on ONNX Runtime or on TensorFlow.js, as initBackend chose for serving. */
  readonly engine: DecoderEngine;

  constructor(
    readonly model: Seq2Seq,
    readonly tokenizer: TextTokenizer,
  ) {
    tokenizer.checkServes(model.config, "the model's config");
    this.engine = servingEngineOf(model);
  }

  /**
   * Loads a checkpoint: the full model, or with `dir` only the sub-network serving that direction
   * (task-routed components extracted, read from disk alone). The checkpoint is verified first
   * (checksums, values, language tags); `warn` hears about one written without checksums.
   */
  static async load(
    modelDir: string,
    dir?: Direction,
    warn: (msg: string) => void = console.error,
  ): Promise<Translator> {
    const reader = await CheckpointReader.open(modelDir);
    const tokenizer = await loadTokenizer(reader.dir, reader.config);
    tokenizer.checkServes(reader.config, path.join(modelDir, 'config.json'));
    await verifyCheckpoint(reader, warn);
    if (dir !== undefined) checkDirection(reader.config.languages, reader.config.pairs, dir);
    const model = dir === undefined ? await Seq2Seq.load(reader) : await Seq2Seq.loadSubnetwork(reader, dir);
    return new Translator(model, tokenizer);
  }

  get pairs(): string[] {
    return this.model.config.pairs;
  }

  /** Throws an InputError naming what is wrong when the model cannot translate `dir`. */
  checkDirection(dir: Direction): void {
    checkDirection(this.model.config.languages, this.pairs, dir);
  }

  /** Source token ids, refusing texts longer than the model's maximum length. */
  encode(texts: string[], dir: Direction): number[][] {
    this.checkDirection(dir);
    return texts.map((text, i) => {
      const ids = this.tokenizer.encodeSource(text, dir.target, dir.source);
      checkSourceLength(ids, this.model.config.maxLength, `text ${i}`);
      return ids;
    });
  }

  /** Translates texts of one direction, in order. */
  translate(texts: string[], dir: Direction, opts: TranslateOptions = {}): Translation[] {
    return this.translateIds(this.encode(texts, dir), dir, opts);
  }

  /** Translates sources already encoded by encode() (the server tokenizes before batching). */
  translateIds(sources: number[][], dir: Direction, opts: TranslateOptions = {}): Translation[] {
    const decodeOpts = this.decodeOptions(opts);
    // Sorting by length keeps padding low inside each batch.
    const order = sources.map((_, i) => i).sort((a, b) => sources[a].length - sources[b].length);
    const results = new Array<Translation>(sources.length);
    const batchSize = opts.batchSize ?? 32;
    for (let start = 0; start < order.length; start += batchSize) {
      const batch = order.slice(start, start + batchSize);
      const hyps = decode(
        this.engine,
        batch.map((i) => sources[i]),
        batch.map(() => dir),
        decodeOpts,
      );
      batch.forEach((i, j) => (results[i] = this.translation(hyps[j])));
    }
    return results;
  }

  /** What the decoder needs of a caller's options and this model's tokenizer. */
  decodeOptions(opts: TranslateOptions): DecodeOptions {
    const { bosId, eosId } = this.tokenizer;
    return {
      bosId,
      eosId,
      beamSize: opts.beamSize,
      nBest: opts.nBest,
      lengthPenalty: opts.lengthPenalty,
      maxLength: opts.maxLength,
    };
  }

  /** A source's translation from its hypotheses, best first. */
  translation(hyps: Hypothesis[]): Translation {
    const [best, ...rest] = hyps.map((h) => this.tokenizer.decode(h.tokens));
    return { text: best, alternatives: rest, generatedTokens: hyps[0].tokens.length };
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** Throws an InputError when a tokenized source is longer than the model accepts; `name` says which text it is. */
export function checkSourceLength(ids: number[], maxLength: number, name: string): void {
  if (ids.length > maxLength) {
    throw new InputError(
      `${name} is ${ids.length} tokens long; the model accepts at most ${maxLength} (including the language tag and end marker)`,
    );
  }
}

/** Throws an InputError naming what is wrong when a model of these languages and pairs cannot translate `dir`. */
export function checkDirection(languages: string[], pairs: string[], dir: Direction): void {
  for (const field of ['source', 'target'] as const) {
    const lang = dir[field];
    if (!languages.includes(lang))
      throw new InputError(`unknown ${field} language "${lang}"; supported languages: ${languages.join(', ')}`);
  }
  if (!pairs.includes(pairKey(dir.source, dir.target))) {
    throw new InputError(`unsupported pair ${pairKey(dir.source, dir.target)}; supported pairs: ${pairs.join(', ')}`);
  }
}
