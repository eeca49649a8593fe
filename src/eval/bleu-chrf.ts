// Corpus-level BLEU and chrF, computed the way sacreBLEU 2.x computes them with its
// defaults (BLEU: 13a tokenizer, 4-grams, `exp` smoothing, mixed case; chrF2: character
// 1..6-grams, no word n-grams, beta 2, whitespace removed), so that scores reported by
// taskmoe can be compared with published sacreBLEU numbers.

export interface BleuResult {
  /** 0–100. */
  score: number;
  /** Modified n-gram precisions for n = 1..4, in percent as sacreBLEU reports them. */
  precisions: number[];
  /** Brevity penalty. */
  bp: number;
  /** Total hypothesis length in 13a tokens. */
  sysLen: number;
  /** Total reference length in 13a tokens. */
  refLen: number;
}

const BLEU_MAX_ORDER = 4;
const CHRF_CHAR_ORDER = 6;
const CHRF_BETA = 2;

// Python's str.split()/str.strip() whitespace (str.isspace), which is what sacreBLEU uses.
// JavaScript's \s differs: it lacks \x1c-\x1f and \x85 and adds \ufeff.
// eslint-disable-next-line no-control-regex -- \x1c-\x1f are whitespace to Python
const PY_WHITESPACE_RUN = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;
const PY_TRAILING_WHITESPACE = new RegExp(`(?:${PY_WHITESPACE_RUN.source})$`);

function pySplit(text: string): string[] {
  return text.split(PY_WHITESPACE_RUN).filter((piece) => piece !== '');
}

// The four regexes of sacreBLEU's TokenizerRegexp, applied in order. No `u` flag: the
// identity escapes (\{, \~, \`) are only legal without it, and matching by UTF-16 unit
// cannot split a surrogate pair here because every replacement keeps its groups adjacent.
/* eslint-disable no-useless-escape -- sacreBLEU's patterns, kept verbatim */
const TOKENIZER_13A_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  // Symbols and most ASCII punctuation (not ' , - . or alphanumerics).
  [/([\{-\~\[-\` -\&\(-\+\:-\@\/])/g, ' $1 '],
  // Period and comma unless preceded by a digit.
  [/([^0-9])([\.,])/g, '$1 $2 '],
  // Period and comma unless followed by a digit.
  [/([\.,])([^0-9])/g, ' $1 $2'],
  // Dash when preceded by a digit.
  [/([0-9])(-)/g, '$1 $2 '],
];
/* eslint-enable no-useless-escape */

/** sacreBLEU's default `13a` tokenizer (mteval-v13a.pl rules). */
export function tokenize13a(line: string): string {
  let text = line
    .replaceAll('<skipped>', '')
    .replaceAll('-\n', '')
    .replaceAll('\n', ' ')
    .replaceAll('&quot;', '"')
    .replaceAll('&amp;', '&')
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>');
  // The padding lets the rules see a neighbour on both sides of the first and last character.
  text = ` ${text} `;
  for (const [pattern, replacement] of TOKENIZER_13A_RULES) {
    text = text.replace(pattern, replacement);
  }
  return pySplit(text).join(' ');
}

function assertParallel(hypotheses: string[], references: string[]): void {
  if (hypotheses.length !== references.length) {
    throw new Error(`hypotheses and references differ in length: ${hypotheses.length} vs ${references.length}`);
  }
}

/** Counts of every n-gram of one order; keys are items joined by `separator`. */
function countNgrams(items: string[], n: number, separator: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= items.length; i++) {
    const key = items.slice(i, i + n).join(separator);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

function totalCount(counts: Map<string, number>): number {
  let total = 0;
  for (const count of counts.values()) total += count;
  return total;
}

/** Clipped matches: each hypothesis n-gram counts at most as often as the reference has it. */
function clippedMatches(hyp: Map<string, number>, ref: Map<string, number>): number {
  let matches = 0;
  for (const [ngram, count] of hyp) {
    matches += Math.min(count, ref.get(ngram) ?? 0);
  }
  return matches;
}

// sacreBLEU's my_log: log(0) floored so an order with no n-grams drives the score to 0.
function flooredLog(x: number): number {
  return x === 0 ? -9999999999 : Math.log(x);
}

function bleuTokens(segment: string): string[] {
  // sacreBLEU right-strips before tokenizing, which matters for a trailing "-\n".
  return tokenize13a(segment.replace(PY_TRAILING_WHITESPACE, ''))
    .split(' ')
    .filter((t) => t !== '');
}

/** Precision per order with sacreBLEU's `exp` smoothing; orders past the first empty one stay 0. */
function smoothedPrecisions(correct: number[], total: number[]): number[] {
  const precisions = new Array<number>(BLEU_MAX_ORDER).fill(0);
  let smoothing = 1;
  for (let n = 0; n < BLEU_MAX_ORDER; n++) {
    if (total[n] === 0) break;
    if (correct[n] === 0) {
      smoothing *= 2;
      precisions[n] = 100 / (smoothing * total[n]!);
    } else {
      precisions[n] = (100 * correct[n]!) / total[n]!;
    }
  }
  return precisions;
}

/** One segment's BLEU sufficient statistics: what corpus BLEU sums over segments. */
export interface BleuStats {
  /** Clipped n-gram matches for n = 1..4. */
  correct: number[];
  /** Hypothesis n-grams for n = 1..4. */
  total: number[];
  sysLen: number;
  refLen: number;
}

/** The BLEU statistics of one hypothesis against its reference. */
export function segmentBleuStats(hypothesis: string, reference: string): BleuStats {
  const hypTokens = bleuTokens(hypothesis);
  const refTokens = bleuTokens(reference);
  const stats: BleuStats = { correct: [], total: [], sysLen: hypTokens.length, refLen: refTokens.length };
  for (let n = 1; n <= BLEU_MAX_ORDER; n++) {
    const hypNgrams = countNgrams(hypTokens, n, ' ');
    stats.total.push(totalCount(hypNgrams));
    stats.correct.push(clippedMatches(hypNgrams, countNgrams(refTokens, n, ' ')));
  }
  return stats;
}

/** Corpus BLEU of the segments whose statistics these are (an index may repeat, as in a bootstrap sample). */
export function bleuFromStats(segments: readonly BleuStats[]): BleuResult {
  const correct = new Array<number>(BLEU_MAX_ORDER).fill(0);
  const total = new Array<number>(BLEU_MAX_ORDER).fill(0);
  let sysLen = 0;
  let refLen = 0;
  for (const s of segments) {
    sysLen += s.sysLen;
    refLen += s.refLen;
    for (let n = 0; n < BLEU_MAX_ORDER; n++) {
      correct[n]! += s.correct[n]!;
      total[n]! += s.total[n]!;
    }
  }
  let bp = 1;
  if (sysLen < refLen) bp = sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0;
  // sacreBLEU returns 0 outright when nothing matched at all (its issue #141).
  if (correct.every((c) => c === 0)) {
    return { score: 0, precisions: new Array<number>(BLEU_MAX_ORDER).fill(0), bp, sysLen, refLen };
  }
  const precisions = smoothedPrecisions(correct, total);
  const meanLog = precisions.map(flooredLog).reduce((sum, x) => sum + x, 0) / BLEU_MAX_ORDER;
  return { score: bp * Math.exp(meanLog), precisions, bp, sysLen, refLen };
}

/** Corpus BLEU against one reference per segment, as sacreBLEU's default `corpus_bleu`. */
export function corpusBleu(hypotheses: string[], references: string[]): BleuResult {
  assertParallel(hypotheses, references);
  return bleuFromStats(hypotheses.map((hypothesis, i) => segmentBleuStats(hypothesis, references[i]!)));
}

interface OrderStats {
  hyp: number;
  ref: number;
  match: number;
}

/** Per-order [hyp, ref, match] character n-gram counts for one segment. */
function chrfSegmentStats(hypothesis: string, reference: string): OrderStats[] {
  // Code points, not UTF-16 units, as Python indexes strings.
  const hypChars = Array.from(pySplit(hypothesis).join(''));
  const refChars = Array.from(pySplit(reference).join(''));
  const stats: OrderStats[] = [];
  for (let n = 1; n <= CHRF_CHAR_ORDER; n++) {
    const hypNgrams = countNgrams(hypChars, n, '');
    const refNgrams = countNgrams(refChars, n, '');
    stats.push({
      // sacreBLEU does not count hypothesis n-grams of an order the reference is too short to have.
      hyp: refNgrams.size > 0 ? totalCount(hypNgrams) : 0,
      ref: totalCount(refNgrams),
      match: clippedMatches(hypNgrams, refNgrams),
    });
  }
  return stats;
}

/**
 * chrF2 over a corpus, as sacreBLEU 2.x's CHRF() defaults: per-order counts are summed over
 * all segments; precision and recall are averaged over the orders where both the hypothesis
 * and reference totals are nonzero; F-beta is taken of those averages. 0–100.
 */
export function corpusChrf(hypotheses: string[], references: string[]): number {
  assertParallel(hypotheses, references);
  const totals: OrderStats[] = Array.from({ length: CHRF_CHAR_ORDER }, () => ({ hyp: 0, ref: 0, match: 0 }));
  hypotheses.forEach((hypothesis, i) => {
    chrfSegmentStats(hypothesis, references[i]!).forEach((order, n) => {
      totals[n]!.hyp += order.hyp;
      totals[n]!.ref += order.ref;
      totals[n]!.match += order.match;
    });
  });

  let precisionSum = 0;
  let recallSum = 0;
  let effectiveOrders = 0;
  for (const { hyp, ref, match } of totals) {
    if (hyp > 0 && ref > 0) {
      precisionSum += match / hyp;
      recallSum += match / ref;
      effectiveOrders++;
    }
  }
  if (effectiveOrders === 0) return 0;
  const precision = precisionSum / effectiveOrders;
  const recall = recallSum / effectiveOrders;
  if (precision + recall === 0) return 0;
  const betaSquared = CHRF_BETA ** 2;
  // Same operation order as sacreBLEU, so results agree to the last bit.
  return (((1 + betaSquared) * precision * recall) / (betaSquared * precision + recall)) * 100;
}
