// The tokenizer files of a Hugging Face translation model, as a taskmoe checkpoint stores them:
// SentencePiece model(s), a {piece: id} vocabulary, the languages and their tokens.
//   Marian:   source.spm, target.spm, vocab.json (target_vocab.json with separate vocabularies)
//   M2M-100:  sentencepiece.bpe.model, vocab.json; language tokens __xx__ numbered after the vocabulary
//   NLLB:     sentencepiece.bpe.model; fairseq numbering (<s> <pad> </s> <unk>, pieces + 1), language tokens in tokenizer_config.json
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Tokenizer } from '../tokenizer/index.ts';
import type { HfConfig } from './hf-config.ts';
import { ImportError } from './safetensors.ts';
import type { ImportOptions } from './hf-import.ts';

export interface HfTokenizer {
  vocabSize: number;
  languages: string[];
  pairs: string[];
  /** [name in the checkpoint, path now]; the first is config.tokenizer. */
  files: [string, string][];
  /** Config fields: targetVocabSize, targetTokenizer, vocab, targetVocab, prompt, languageTokens, specialIds. */
  fields: Record<string, unknown>;
}

// Transformers' M2M100Tokenizer numbers these language tokens after vocab.json, in this order.
const M2M_LANGUAGES: Record<string, string[]> = {
  m2m100:
    'af am ar ast az ba be bg bn br bs ca ceb cs cy da de el en es et fa ff fi fr fy ga gd gl gu ha he hi hr ht hu hy id ig ilo is it ja jv ka kk km kn ko lb lg ln lo lt lv mg mk ml mn mr ms my ne nl no ns oc or pa pl ps pt ro ru sd si sk sl so sq sr ss su sv sw ta th tl tn tr uk ur uz vi wo xh yi yo zh zu'.split(
      ' ',
    ),
  wmt21: 'en ha is ja cs ru zh de'.split(' '),
};

function need(src: string, file: string, what: string): string {
  const p = path.join(src, file);
  if (!fs.existsSync(p)) throw new ImportError(`missing tokenizer file ${p} (${what})`);
  return p;
}

async function json(p: string): Promise<Record<string, unknown>> {
  return JSON.parse(await fsp.readFile(p, 'utf8')) as Record<string, unknown>;
}

/** Languages kept, and every pair between them that the options allow. */
function choosePairs(all: string[], opts: ImportOptions): { languages: string[]; pairs: string[] } {
  for (const l of [...(opts.sources ?? []), ...(opts.targets ?? [])]) {
    if (!all.includes(l)) throw new ImportError(`language "${l}" is not one of the model's: ${all.join(', ')}`);
  }
  const sources = opts.sources ?? all;
  const targets = opts.targets ?? all;
  const pairs = sources.flatMap((s) => targets.filter((t) => t !== s).map((t) => `${s}-${t}`));
  if (pairs.length === 0)
    throw new ImportError('no language pair left: give different --source and --target languages');
  const languages = all.filter((l) => sources.includes(l) || targets.includes(l));
  return { languages, pairs };
}

export async function readHfTokenizer(
  src: string,
  hf: HfConfig,
  tmp: string,
  opts: ImportOptions,
): Promise<HfTokenizer> {
  const tc = fs.existsSync(path.join(src, 'tokenizer_config.json'))
    ? await json(path.join(src, 'tokenizer_config.json'))
    : {};
  const o = hf.raw;
  if (hf.family === 'marian') return marian(src, o, tc, opts);
  const isNllb =
    hf.family === 'nllb_moe' ||
    String(tc.tokenizer_class ?? '').startsWith('Nllb') ||
    !fs.existsSync(path.join(src, 'vocab.json'));
  return isNllb ? nllb(src, o, tc, tmp, opts) : m2m100(src, o, tc, opts);
}

async function marian(
  src: string,
  o: Record<string, unknown>,
  tc: Record<string, unknown>,
  opts: ImportOptions,
): Promise<HfTokenizer> {
  const source = need(src, 'source.spm', "Marian's source SentencePiece model");
  const target = need(src, 'target.spm', "Marian's target SentencePiece model");
  const vocabPath = need(src, 'vocab.json', "Marian's {piece: id} vocabulary");
  const vocab = await json(vocabPath);
  const separate = tc.separate_vocabs === true || o.share_encoder_decoder_embeddings === false;
  const files: [string, string][] = [
    ['source.spm', source],
    ['target.spm', target],
    ['vocab.json', vocabPath],
  ];
  const fields: Record<string, unknown> = { targetTokenizer: 'target.spm', vocab: 'vocab.json', prompt: 'none' };
  if (separate) {
    const tv = need(src, 'target_vocab.json', "Marian's target vocabulary (separate_vocabs)");
    files.push(['target_vocab.json', tv]);
    fields.targetVocab = 'target_vocab.json';
    fields.targetVocabSize = o.decoder_vocab_size;
  }
  if (vocab['<unk>'] === undefined) throw new ImportError(`${vocabPath} has no "<unk>"`);
  fields.specialIds = {
    decoderStart: o.decoder_start_token_id ?? o.pad_token_id,
    eos: o.eos_token_id,
    pad: o.pad_token_id,
    unk: vocab['<unk>'],
  };
  const s = opts.sources ?? (typeof tc.source_lang === 'string' ? [tc.source_lang] : undefined);
  const t = opts.targets ?? (typeof tc.target_lang === 'string' ? [tc.target_lang] : undefined);
  if (s === undefined || t === undefined || s.length !== 1 || t.length !== 1) {
    throw new ImportError('a Marian model serves one pair that its config does not name: give --source XX --target YY');
  }
  return { vocabSize: o.vocab_size as number, languages: [s[0], t[0]], pairs: [`${s[0]}-${t[0]}`], files, fields };
}

async function m2m100(
  src: string,
  o: Record<string, unknown>,
  tc: Record<string, unknown>,
  opts: ImportOptions,
): Promise<HfTokenizer> {
  const spmPath = need(src, 'sentencepiece.bpe.model', "M2M-100's SentencePiece model");
  const vocabPath = need(src, 'vocab.json', "M2M-100's {piece: id} vocabulary");
  const vocab = await json(vocabPath);
  const codes = M2M_LANGUAGES[(tc.language_codes as string | undefined) ?? 'm2m100'];
  if (codes === undefined)
    throw new ImportError(
      `tokenizer_config.json: unknown language_codes ${JSON.stringify(tc.language_codes)} (m2m100 or wmt21)`,
    );
  const size = Object.keys(vocab).length;
  const languageTokens = Object.fromEntries(codes.map((c, i) => [c, size + i]));
  const { languages, pairs } = choosePairs(codes, opts);
  return {
    vocabSize: o.vocab_size as number,
    languages,
    pairs,
    files: [
      ['sentencepiece.bpe.model', spmPath],
      ['vocab.json', vocabPath],
    ],
    fields: {
      vocab: 'vocab.json',
      prompt: 'language-tokens',
      languageTokens: Object.fromEntries(languages.map((l) => [l, languageTokens[l]])),
      specialIds: {
        decoderStart: o.decoder_start_token_id,
        eos: o.eos_token_id,
        pad: o.pad_token_id,
        unk: vocab['<unk>'] ?? 3,
      },
    },
  };
}

/** NLLB's language tokens by id: tokenizer_config.json's added_tokens_decoder, or tokenizer.json's added_tokens. */
async function nllbLanguageTokens(src: string, tc: Record<string, unknown>): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  const added = tc.added_tokens_decoder as Record<string, { content: string }> | undefined;
  if (added !== undefined) for (const [id, t] of Object.entries(added)) found.set(t.content, Number(id));
  else if (fs.existsSync(path.join(src, 'tokenizer.json'))) {
    const tj = await json(path.join(src, 'tokenizer.json'));
    for (const t of (tj.added_tokens as { id: number; content: string }[] | undefined) ?? [])
      found.set(t.content, t.id);
  } else
    throw new ImportError(
      `${src}: no tokenizer_config.json with added_tokens_decoder or tokenizer.json: the language tokens' ids are unknown`,
    );
  return new Map([...found].filter(([c]) => /^[a-z]{3}_[A-Z][a-z]{3}$/.test(c)));
}

async function nllb(
  src: string,
  o: Record<string, unknown>,
  tc: Record<string, unknown>,
  tmp: string,
  opts: ImportOptions,
): Promise<HfTokenizer> {
  const spmPath = need(src, 'sentencepiece.bpe.model', "NLLB's SentencePiece model");
  const langs = await nllbLanguageTokens(src, tc);
  if (langs.size === 0)
    throw new ImportError(`${src}: the tokenizer files name no NLLB language tokens (such as deu_Latn)`);
  // fairseq numbering: <s> <pad> </s> <unk>, then SentencePiece's pieces shifted by one (its <unk> is 3)
  const sp = await Tokenizer.load(spmPath, true);
  const vocab: Record<string, number> = { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3 };
  sp.pieces.forEach((piece, i) => {
    if (i >= 3 && vocab[piece] === undefined) vocab[piece] = i + 1;
  });
  for (const [code, id] of langs) vocab[code] = id;
  const vocabPath = path.join(tmp, 'vocab.json');
  await fsp.writeFile(vocabPath, JSON.stringify(vocab));
  const { languages, pairs } = choosePairs([...langs.keys()], opts);
  return {
    vocabSize: o.vocab_size as number,
    languages,
    pairs,
    files: [
      ['sentencepiece.bpe.model', spmPath],
      ['vocab.json', vocabPath],
    ],
    fields: {
      vocab: 'vocab.json',
      prompt: 'language-tokens',
      languageTokens: Object.fromEntries(languages.map((l) => [l, langs.get(l)!])),
      specialIds: { decoderStart: o.decoder_start_token_id, eos: o.eos_token_id, pad: o.pad_token_id, unk: 3 },
    },
  };
}
