// Splitting a text into the sentences a model translates, keeping everything between them
// (spaces, line breaks, indentation) so the translation can be put back together around them.
// Sentences come from ICU's segmenter (Intl.Segmenter); one the model cannot take whole is cut
// at clause boundaries, or failing that between words, never refused.

/** A text as literal runs (kept as they are) and sentences (translated), in order. */
export type Piece = { keep: string } | { sentence: string };

/** Whether a sentence is too long for the model (e.g. more tokens than its maxLength). */
export type TooLong = (sentence: string) => boolean;

const sentenceSegmenter = new Intl.Segmenter('en', { granularity: 'sentence' });
const wordSegmenter = new Intl.Segmenter('en', { granularity: 'word' });

/** The text's pieces: line breaks and surrounding whitespace kept, sentences no longer than `tooLong` allows. */
export function segment(text: string, tooLong: TooLong = () => false): Piece[] {
  const pieces: Piece[] = [];
  // Line breaks always end a sentence: catalogs and files use them as structure.
  for (const part of text.split(/(\r?\n[\s]*)/)) {
    if (/^\s*$/.test(part)) {
      if (part !== '') pieces.push({ keep: part });
      continue;
    }
    for (const { index, segment: shadow } of sentenceSegmenter.segment(shadowMarkers(part))) {
      for (const piece of trimmed(part.slice(index, index + shadow.length))) {
        if ('sentence' in piece) pieces.push(...splitLong(piece.sentence, tooLong));
        else pieces.push(piece);
      }
    }
  }
  return merge(pieces);
}

/**
 * The text as the sentence segmenter should read it: masks (`{3}`) and html.ts's bare inline
 * markers (`<b>`, `</a>`) written as brackets of the same length (ICU's Close class). As they are,
 * ICU cuts `file.{3} Next` inside the mask (a digit may follow a period) and reads `. <a>Open` as
 * one sentence (a lowercase letter follows the period); as brackets the breaks fall where they
 * fall in the plain text, an opening marker starting the next sentence and a closing one or a
 * mask ending its own.
 */
function shadowMarkers(text: string): string {
  return text.replace(/<(\/?)[a-z][a-z0-9-]*>|\{\d+\}/gi, (m: string, slash?: string) =>
    (slash === '' ? '(' : ')').repeat(m.length),
  );
}

/** Joins a segmented text back, with `translated` in place of its sentences, in order. */
export function assemble(pieces: Piece[], translated: string[]): string {
  let i = 0;
  const out = pieces.map((p) => ('keep' in p ? p.keep : translated[i++]));
  if (i !== translated.length) throw new Error(`assemble: ${translated.length} translations for ${i} sentences`);
  return out.join('');
}

/** The sentences of segmented pieces, in order. */
export function sentencesOf(pieces: Piece[]): string[] {
  return pieces.flatMap((p) => ('sentence' in p ? [p.sentence] : []));
}

/** A sentence without its leading and trailing whitespace, which is kept apart. */
function trimmed(s: string): Piece[] {
  const m = /^(\s*)([\s\S]*?)(\s*)$/.exec(s)!;
  const out: Piece[] = [];
  if (m[1]) out.push({ keep: m[1] });
  if (m[2]) out.push({ sentence: m[2] });
  if (m[3]) out.push({ keep: m[3] });
  return out;
}

// Clause boundaries, strongest first: a cut goes after the punctuation, before the space.
const CLAUSE_BREAKS = [/[;:](?=\s)/g, /[,،、，](?=\s?)/g, /\s[-–—](?=\s)/g];

/** A sentence cut into pieces the model takes: at clause boundaries near its middle, else between words. */
export function splitLong(sentence: string, tooLong: TooLong): Piece[] {
  if (!tooLong(sentence)) return [{ sentence }];
  const cut = clauseCut(sentence) ?? wordCut(sentence);
  // A single word the model cannot take whole: cut between characters (code points).
  const at = cut ?? codePointMiddle(sentence);
  if (at <= 0 || at >= sentence.length) return [{ sentence }];
  return merge([
    ...splitLong(sentence.slice(0, at), tooLong),
    ...trimmed(sentence.slice(at)).flatMap((p) => ('sentence' in p ? splitLong(p.sentence, tooLong) : [p])),
  ]);
}

/** The clause boundary closest to the middle, of the strongest kind present. */
function clauseCut(s: string): number | undefined {
  for (const re of CLAUSE_BREAKS) {
    const cuts = [...s.matchAll(re)].map((m) => m.index! + m[0].length).filter((i) => i > 0 && i < s.length);
    if (cuts.length > 0) return closest(cuts, s.length / 2);
  }
  return undefined;
}

/** The word boundary closest to the middle (ICU word breaks, so scripts without spaces cut too). */
function wordCut(s: string): number | undefined {
  const cuts: number[] = [];
  for (const { index, segment: w } of wordSegmenter.segment(s)) {
    if (index > 0 && /^\s/.test(w)) cuts.push(index);
  }
  if (cuts.length === 0) {
    for (const { index } of wordSegmenter.segment(s)) if (index > 0) cuts.push(index);
  }
  return cuts.length > 0 ? closest(cuts, s.length / 2) : undefined;
}

function codePointMiddle(s: string): number {
  const points = [...s];
  return points.slice(0, Math.floor(points.length / 2)).join('').length;
}

function closest(xs: number[], target: number): number {
  return xs.reduce((best, x) => (Math.abs(x - target) < Math.abs(best - target) ? x : best));
}

/** Adjacent kept runs merged into one. */
function merge(pieces: Piece[]): Piece[] {
  const out: Piece[] = [];
  for (const p of pieces) {
    const last = out[out.length - 1];
    if ('keep' in p && last !== undefined && 'keep' in last) out[out.length - 1] = { keep: last.keep + p.keep };
    else out.push(p);
  }
  return out;
}
