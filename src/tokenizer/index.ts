import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Prompt } from '../models/config.ts';
import { type ModelInfo, readModelInfo } from './model-proto.ts';

/** The parts of @agnai/sentencepiece-js used here; the package ships no type declarations. */
interface SentencePieceJs {
  load(modelPath: string): Promise<void>;
  encodeIds(text: string): number[];
  decodeIds(ids: number[]): string;
  processor: { status(): { ToString(): string; delete(): void } };
}

// A CommonJS package without types: require() gives it a type here and works in workers too.
const require = createRequire(import.meta.url);
const { SentencePieceProcessor } = require('@agnai/sentencepiece-js') as {
  SentencePieceProcessor: new () => SentencePieceJs;
};

export class Tokenizer {
  private readonly pieceIds: Map<string, number>;

  private constructor(
    /** The .model file it was loaded from. */
    readonly path: string,
    private readonly processor: SentencePieceJs,
    private readonly model: ModelInfo,
  ) {
    this.pieceIds = new Map(model.pieces.map((piece, id) => [piece, id]));
  }

  /** `mapped`: the model's ids come from a vocabulary mapping (imported models), so the special pieces may be absent. */
  static async load(modelPath: string, mapped = false): Promise<Tokenizer> {
    const bytes = await readModelFile(modelPath);
    const processor = new SentencePieceProcessor();
    // The library's load() ignores the status of the underlying Load(); ask for it afterwards.
    await processor.load(modelPath);
    const status = processor.processor.status();
    const statusText = status.ToString();
    status.delete();
    if (statusText !== 'OK') {
      throw new Error(`invalid sentencepiece model ${modelPath}: ${statusText}`);
    }
    return new Tokenizer(modelPath, processor, readModelInfo(bytes, modelPath, mapped));
  }

  get vocabSize(): number {
    return this.model.pieces.length;
  }
  /** The SentencePiece pieces, by id. */
  get pieces(): readonly string[] {
    return this.model.pieces;
  }
  /** The id of a piece, undefined when it is not in the model. */
  pieceId(piece: string): number | undefined {
    return this.pieceIds.get(piece);
  }
  get padId(): number {
    return this.model.padId;
  }
  get unkId(): number {
    return this.model.unkId;
  }
  get bosId(): number {
    return this.model.bosId;
  }
  get eosId(): number {
    return this.model.eosId;
  }

  /** Piece ids of `text`, without BOS/EOS. */
  encode(text: string): number[] {
    return this.processor.encodeIds(text);
  }

  /**
   * Text of `ids`. Sentencepiece itself drops control pieces (pad/bos/eos) and reassembles
   * byte-fallback pieces into UTF-8, but silently returns '' for out-of-range ids, hence the check.
   */
  decode(ids: number[]): string {
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= this.vocabSize);
    if (bad !== undefined) {
      throw new RangeError(`token id ${bad} is outside the vocabulary (size ${this.vocabSize})`);
    }
    return this.processor.decodeIds(ids);
  }

  /**
   * Checks that this tokenizer serves a model config: the same vocabulary size and a tag for every
   * language. `configName` (a file, usually) starts the error message.
   */
  checkServes(cfg: { vocabSize: number; languages: readonly string[]; prompt?: Prompt }, configName: string): void {
    if (this.vocabSize !== cfg.vocabSize)
      throw new Error(
        `${configName}: vocabSize ${cfg.vocabSize} does not match ${this.path} (${this.vocabSize} pieces)`,
      );
    // Only a model prompted with <2xx> tags needs them in its vocabulary.
    if ((cfg.prompt ?? 'target-tag') !== 'target-tag') return;
    const missing = cfg.languages.filter((lang) => !this.pieceIds.has(`<2${lang}>`));
    if (missing.length > 0) {
      const tags = missing.map((l) => `<2${l}>`).join(', ');
      throw new Error(
        `${configName} lists languages whose tags ${this.path} lacks: ${tags} (retrain the tokenizer with these languages, or drop them from "languages")`,
      );
    }
  }

  /** Id of the target-language tag `<2xx>`. */
  languageTagId(lang: string): number {
    const id = this.pieceIds.get(`<2${lang}>`);
    if (id === undefined) {
      const known = this.model.pieces.filter((piece) => /^<2[^>]+>$/.test(piece));
      throw new Error(
        `language tag <2${lang}> is not in the tokenizer vocabulary (tags: ${known.join(' ') || 'none'})`,
      );
    }
    return id;
  }

  /** Model input for translating `text` into `targetLang`: [<2xx>, ...pieces, EOS]. */
  encodeSource(text: string, targetLang: string, _sourceLang?: string): number[] {
    return [this.languageTagId(targetLang), ...this.encode(text), this.eosId];
  }
}

async function readModelFile(modelPath: string): Promise<Uint8Array> {
  try {
    return await readFile(modelPath);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new Error(`cannot read sentencepiece model ${modelPath}: ${reason}`);
  }
}
