// Text of any length and content through a sentence translator: mask the spans that must not
// change, cut into sentences the model takes, translate every sentence of every text in one call
// (so they batch together), and put each text back together. It knows no HTTP and no model.
import { type Masked, type Protected, mask, placeholdersIn, repair, unmask } from './mask.ts';
import { type Piece, type TooLong, assemble, segment, sentencesOf } from './segment.ts';

/** Translates sentences, in order; the server's batcher or a Translator behind it. */
export type TranslateSentences = (sentences: string[]) => Promise<string[]>;

/** A text ready to translate: its pieces (over the masked text) and the spans its masks stand for. */
export interface Prepared extends Pick<Masked, 'spans' | 'placeholders'> {
  pieces: Piece[];
}

/** Masks and segments a text; `atomic` ranges (e.g. inline code or tag markers in html) are masked whole. */
export function prepare(text: string, tooLong?: TooLong, atomic?: Protected[]): Prepared {
  const masked = mask(text, atomic);
  return { pieces: segment(masked.text, tooLong), spans: masked.spans, placeholders: masked.placeholders };
}

/** The sentences the model must see: those with words left once masks are out. */
export function needsModel(sentence: string): boolean {
  let rest = sentence.replace(/\{\d+\}/g, '');
  for (const p of placeholdersIn(rest)) rest = rest.replace(p, '');
  return /\p{L}/u.test(rest);
}

/** Puts a prepared text back together from the translations of its sentences, masks still in (each once). */
export function finishMasked(p: Prepared, translated: string[]): string {
  const sources = sentencesOf(p.pieces);
  return assemble(
    p.pieces,
    translated.map((t, i) => repair(t, sources[i])),
  );
}

/** Puts a prepared text back together from the translations of its sentences, spans restored. */
export function finish(p: Prepared, translated: string[]): string {
  return unmask(finishMasked(p, translated), p);
}

/**
 * Translates prepared texts with one call to `translate` for all their sentences. Sentences
 * without words (a lone placeholder, a number) are kept as they are.
 */
export async function translatePrepared<R = string>(
  texts: Prepared[],
  translate: TranslateSentences,
  done: (p: Prepared, translated: string[]) => R = finish as (p: Prepared, translated: string[]) => R,
): Promise<R[]> {
  const sentences = texts.map((p) => sentencesOf(p.pieces));
  const flat = sentences.flat();
  const asked = flat.map((s, i) => (needsModel(s) ? i : -1)).filter((i) => i >= 0);
  const answers = asked.length > 0 ? await translate(asked.map((i) => flat[i])) : [];
  if (answers.length !== asked.length)
    throw new Error(`translator answered ${answers.length} sentences for ${asked.length}`);
  const out = flat.slice();
  asked.forEach((i, k) => (out[i] = answers[k]));
  let at = 0;
  return texts.map((p, t) => {
    const mine = out.slice(at, at + sentences[t].length);
    at += sentences[t].length;
    return done(p, mine);
  });
}

/** Translates whole texts: long ones cut into sentences `tooLong` accepts, spans kept. */
export function translateTexts(texts: string[], translate: TranslateSentences, tooLong?: TooLong): Promise<string[]> {
  return translatePrepared(
    texts.map((t) => prepare(t, tooLong)),
    translate,
  );
}
