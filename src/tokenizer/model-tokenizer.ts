// The tokenizer of a model imported from elsewhere (Marian, M2M-100, NLLB): SentencePiece models
// whose pieces map to model ids through a {piece: id} vocabulary, a target side that may have its
// own model and vocabulary, special ids from the config, and language tokens instead of <2xx> tags.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { ModelConfig, SpecialIds } from '../models/config.ts';
import { Tokenizer } from './index.ts';

/** What the translator and the server need of a tokenizer, taskmoe's own or an imported one. */
export type TextTokenizer = Pick<
  Tokenizer,
  'vocabSize' | 'bosId' | 'eosId' | 'encodeSource' | 'decode' | 'languageTagId' | 'checkServes'
>;

/** One side's SentencePiece model and the mapping between its pieces and model ids. */
class MappedSide {
  private readonly toModel: Int32Array; // SentencePiece id -> model id (-1: unknown)
  private readonly toPiece = new Map<number, number>(); // model id -> SentencePiece id

  constructor(
    readonly sp: Tokenizer,
    vocab: Record<string, number>,
    unk: number,
  ) {
    this.toModel = Int32Array.from(sp.pieces, (p) => vocab[p] ?? unk);
    for (const [piece, id] of Object.entries(vocab)) {
      const spId = sp.pieceId(piece);
      if (spId !== undefined) this.toPiece.set(id, spId);
    }
  }

  encode(text: string): number[] {
    return this.sp.encode(text).map((i) => this.toModel[i]);
  }

  // model ids -> text; ids with no SentencePiece piece (eos, pad, language tokens) are left out
  decode(ids: number[]): string {
    return this.sp.decode(ids.flatMap((id) => this.toPiece.get(id) ?? []));
  }
}

export class ModelTokenizer implements TextTokenizer {
  private constructor(
    private readonly cfg: ModelConfig,
    private readonly special: SpecialIds,
    private readonly source: MappedSide,
    private readonly target: MappedSide,
  ) {}

  static async load(dir: string, cfg: ModelConfig): Promise<ModelTokenizer> {
    const special = cfg.specialIds!;
    const vocab = (f: string) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Record<string, number>;
    const sourceVocab = vocab(cfg.vocab!);
    const source = new MappedSide(await Tokenizer.load(path.join(dir, cfg.tokenizer), true), sourceVocab, special.unk);
    const target =
      cfg.targetTokenizer === undefined && cfg.targetVocab === undefined
        ? source
        : new MappedSide(
            await Tokenizer.load(path.join(dir, cfg.targetTokenizer ?? cfg.tokenizer), true),
            cfg.targetVocab ? vocab(cfg.targetVocab) : sourceVocab,
            special.unk,
          );
    return new ModelTokenizer(cfg, special, source, target);
  }

  get vocabSize(): number {
    return this.cfg.vocabSize;
  }
  /** The decoder's first input. */
  get bosId(): number {
    return this.special.decoderStart;
  }
  get eosId(): number {
    return this.special.eos;
  }

  /** Checks that this tokenizer serves `cfg`: the same vocabulary size and, with language tokens, one for every language. */
  checkServes(cfg: ModelConfig, configName: string): void {
    if (cfg.vocabSize !== this.cfg.vocabSize)
      throw new Error(`${configName}: vocabSize ${cfg.vocabSize} does not match the tokenizer's ${this.cfg.vocabSize}`);
    if (cfg.prompt !== 'language-tokens') return;
    const missing = cfg.languages.filter((lang) => cfg.languageTokens?.[lang] === undefined);
    if (missing.length > 0)
      throw new Error(`${configName} lists languages without a token in "languageTokens": ${missing.join(', ')}`);
  }

  /** The token naming `lang` (prompt 'language-tokens'); models with one pair per model have none. */
  languageTagId(lang: string): number {
    const id = this.cfg.languageTokens?.[lang];
    if (this.cfg.prompt === 'language-tokens' && id === undefined)
      throw new Error(`language "${lang}" has no token in this model`);
    return id ?? -1;
  }

  /** [source language token,] pieces, EOS; the target language is forced as the decoder's first output. */
  encodeSource(text: string, _targetLang: string, sourceLang?: string): number[] {
    const pieces = this.source.encode(text);
    if (this.cfg.prompt !== 'language-tokens') return [...pieces, this.special.eos];
    if (sourceLang === undefined) throw new Error('this model needs the source language');
    return [this.languageTagId(sourceLang), ...pieces, this.special.eos];
  }

  decode(ids: number[]): string {
    return this.target.decode(ids);
  }
}

/** The tokenizer a checkpoint names: taskmoe's own SentencePiece model, or an imported model's. */
export async function loadTokenizer(dir: string, cfg: ModelConfig): Promise<TextTokenizer> {
  return cfg.vocab === undefined ? Tokenizer.load(path.join(dir, cfg.tokenizer)) : ModelTokenizer.load(dir, cfg);
}
