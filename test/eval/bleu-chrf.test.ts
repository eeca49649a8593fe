import { test } from 'node:test';
import assert from 'node:assert/strict';

import { bleuFromStats, corpusBleu, corpusChrf, segmentBleuStats, tokenize13a } from '../../src/eval/bleu-chrf.ts';

// Expected values below are derived by hand from the mteval-v13a / sacreBLEU definitions;
// floats are compared with a tolerance because exp/log may differ in the last bit.
function assertClose(actual: number, expected: number, message?: string): void {
  assert.ok(Math.abs(actual - expected) < 1e-9, `${message ?? ''} expected ${expected}, got ${actual}`);
}

function assertAllClose(actual: number[], expected: number[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((value, i) => assertClose(value, expected[i]!, `[${i}]`));
}

test('13a splits punctuation off words', () => {
  // "!" is in the symbol class → " ! "; "," after a letter gets spaces around it.
  assert.equal(tokenize13a('Hello, world!'), 'Hello , world !');
  // ' is outside the symbol class; / $ % ( ) are inside it.
  assert.equal(tokenize13a("don't a/b $5 100% (x)"), "don't a / b $ 5 100 % ( x )");
});

test('13a keeps decimal points and thousands separators between digits', () => {
  // "3.14": the "." is preceded by a digit (rule 2 skips) and followed by one (rule 3 skips).
  // "dollars.": "s." matches rule 2 → "s . ".
  assert.equal(tokenize13a('It costs 3.14 or 1,000 dollars.'), 'It costs 3.14 or 1,000 dollars .');
  // "3." at the end: preceded by a digit, but followed by the padding space → rule 3 splits.
  assert.equal(tokenize13a('It is 3.'), 'It is 3 .');
  // Each "." of "e.g." follows a letter → rule 2 splits both.
  assert.equal(tokenize13a('e.g.'), 'e . g .');
});

test('13a splits a hyphen only after a digit', () => {
  // "0-" matches rule 4 → "0 - "; "l-k" and " -5" have no digit before the dash.
  assert.equal(tokenize13a('pages 10-20 and well-known -5'), 'pages 10 - 20 and well-known -5');
});

test('13a unescapes entities once and drops skip markers and line breaks', () => {
  // &quot; → '"' and &amp; → '&', both then split off as symbols.
  assert.equal(tokenize13a('&quot;Yes&quot; &amp; no'), '" Yes " & no');
  // &amp; is replaced after &quot;, so "&amp;quot;" becomes "&quot;" and stays that text:
  // "&" and ";" are symbols.
  assert.equal(tokenize13a('&amp;quot;'), '& quot ;');
  // "<skipped>" is removed, "-\n" joins the halves, a bare "\n" becomes a space.
  assert.equal(tokenize13a('<skipped>a-\nb\nc'), 'ab c');
});

test('13a collapses whitespace and trims', () => {
  assert.equal(tokenize13a('  a \t b  '), 'a b');
  assert.equal(tokenize13a(''), '');
});

test('BLEU of a perfect match is 100', () => {
  const result = corpusBleu(['the cat sat on the mat'], ['the cat sat on the mat']);
  assertClose(result.score, 100);
  assertAllClose(result.precisions, [100, 100, 100, 100]);
  assert.equal(result.bp, 1);
  assert.equal(result.sysLen, 6);
  assert.equal(result.refLen, 6);
});

test('BLEU of an empty hypothesis is 0', () => {
  const result = corpusBleu([''], ['the cat']);
  assert.equal(result.score, 0);
  assert.equal(result.sysLen, 0);
  assert.equal(result.refLen, 2);
  // No output at all: sacreBLEU sets the brevity penalty to 0 rather than dividing by 0.
  assert.equal(result.bp, 0);
});

test('BLEU with partial matches and a brevity penalty', () => {
  // hyp: the cat sat on the mat      (c = 6)
  // ref: the cat sat on the red mat  (r = 7)
  // 1-grams: the×2 cat sat on mat, all in ref (the×2 there too)        → 6/6
  // 2-grams: the-cat cat-sat sat-on on-the | the-mat (ref: the-red)    → 4/5
  // 3-grams: the-cat-sat cat-sat-on sat-on-the | on-the-mat            → 3/4
  // 4-grams: the-cat-sat-on cat-sat-on-the | sat-on-the-mat            → 2/3
  // geometric mean = (1 · 4/5 · 3/4 · 2/3)^(1/4) = 0.4^(1/4); BP = exp(1 − 7/6)
  const result = corpusBleu(['the cat sat on the mat'], ['the cat sat on the red mat']);
  assertAllClose(result.precisions, [100, 80, 75, 200 / 3]);
  assertClose(result.bp, Math.exp(-1 / 6));
  assertClose(result.score, 100 * 0.4 ** 0.25 * Math.exp(-1 / 6));
});

test('BLEU sums n-gram counts and lengths over the corpus before scoring', () => {
  // Pair 1 is a perfect 6-token match: 6/6, 5/5, 4/4, 3/3; lengths 6 and 6.
  // Pair 2: "a dog ran" vs "a dog ran away fast": 3/3, 2/2, 1/1, 0/0; lengths 3 and 5.
  // Totals: 9/9, 7/7, 5/5, 3/3 → all precisions 100; c = 9, r = 11 → BP = exp(1 − 11/9).
  // (Pair 2 alone has no 4-grams, which would make its own score 0.)
  const result = corpusBleu(['the cat sat on the mat', 'a dog ran'], ['the cat sat on the mat', 'a dog ran away fast']);
  assertAllClose(result.precisions, [100, 100, 100, 100]);
  assert.equal(result.sysLen, 9);
  assert.equal(result.refLen, 11);
  assertClose(result.score, 100 * Math.exp(1 - 11 / 9));
});

test('BLEU smooths a zero 4-gram match with the exp method', () => {
  // hyp: the cat sat on mat, ref: the cat sat in mat (5 tokens each → BP 1)
  // 1-grams: the cat sat mat match, "on" does not                → 4/5
  // 2-grams: the-cat cat-sat | sat-on on-mat                     → 2/4
  // 3-grams: the-cat-sat | cat-sat-on sat-on-mat                 → 1/3
  // 4-grams: the-cat-sat-on cat-sat-on-mat                       → 0/2
  //   first zero order: precision = 100 / (2^1 · 2) = 25
  const result = corpusBleu(['the cat sat on mat'], ['the cat sat in mat']);
  assertAllClose(result.precisions, [80, 50, 100 / 3, 25]);
  assert.equal(result.bp, 1);
  assertClose(result.score, 100 * (0.8 * 0.5 * (1 / 3) * 0.25) ** 0.25);
});

test('BLEU exp smoothing doubles its divisor for each further zero order', () => {
  // hyp: one two three four (c = 4), ref: one two and three four (r = 5)
  // 1-grams: all four in ref                              → 4/4
  // 2-grams: one-two three-four | two-three               → 2/3
  // 3-grams: one-two-three two-three-four                 → 0/2 → 100 / (2 · 2) = 25
  // 4-grams: one-two-three-four                           → 0/1 → 100 / (4 · 1) = 25
  const result = corpusBleu(['one two three four'], ['one two and three four']);
  assertAllClose(result.precisions, [100, 200 / 3, 25, 25]);
  assertClose(result.bp, Math.exp(1 - 5 / 4));
  assertClose(result.score, 100 * Math.exp(1 - 5 / 4) * (1 * (2 / 3) * 0.25 * 0.25) ** 0.25);
});

test('BLEU clips repeated n-grams to their reference count', () => {
  // hyp: the the the the, ref: the cat. "the" occurs once in ref → 1/4.
  // 2-grams the-the ×3 → 0/3 → 100/(2·3); 3-grams ×2 → 0/2 → 100/(4·2); 4-gram → 0/1 → 100/8.
  // c = 4 ≥ r = 2 → BP 1.
  const result = corpusBleu(['the the the the'], ['the cat']);
  assertAllClose(result.precisions, [25, 100 / 6, 12.5, 12.5]);
  assertClose(result.score, (25 * (100 / 6) * 12.5 * 12.5) ** 0.25);
});

test('BLEU is 0 when nothing matches or an order has no n-grams at all', () => {
  assert.equal(corpusBleu(['w x y z'], ['a b c d']).score, 0);
  // Two tokens give no 3- or 4-grams; without effective order those precisions are 0,
  // so even a perfect two-word match scores 0, as sacreBLEU's corpus_bleu does.
  const short = corpusBleu(['the cat'], ['the cat']);
  assertAllClose(short.precisions, [100, 100, 0, 0]);
  assert.equal(short.score, 0);
});

test('BLEU counts 13a tokens, not whitespace-separated words', () => {
  // "Hello, world!" → Hello , world ! (4); "Hello world!" → Hello world ! (3)
  const result = corpusBleu(['Hello, world!'], ['Hello world!']);
  assert.equal(result.sysLen, 4);
  assert.equal(result.refLen, 3);
});

test('metrics reject hypotheses and references of different lengths', () => {
  assert.throws(() => corpusBleu(['a'], []), /differ in length/);
  assert.throws(() => corpusChrf([], ['a']), /differ in length/);
});

test('chrF of identical strings is 100', () => {
  assertClose(corpusChrf(['the cat sat', 'on the mat'], ['the cat sat', 'on the mat']), 100);
});

test('chrF of a hypothesis missing the last character', () => {
  // hyp "ab", ref "abc"
  // n=1: hyp {a,b} 2, ref {a,b,c} 3, match 2 → P = 1,   R = 2/3
  // n=2: hyp {ab} 1,  ref {ab,bc} 2, match 1 → P = 1,   R = 1/2
  // n=3: hyp has none → order left out (so are n = 4..6)
  // P̄ = 1, R̄ = (2/3 + 1/2)/2 = 7/12; F2 = 5·P̄·R̄ / (4·P̄ + R̄) = (35/12)/(55/12) = 7/11
  assertClose(corpusChrf(['ab'], ['abc']), (100 * 7) / 11);
});

test('chrF of a hypothesis with an extra character', () => {
  // hyp "abc", ref "ab"
  // n=1: hyp 3, ref 2, match 2 → P = 2/3, R = 1
  // n=2: hyp 2, ref 1, match 1 → P = 1/2, R = 1
  // n=3: ref has none → left out
  // P̄ = 7/12, R̄ = 1; F2 = 5·(7/12) / (4·7/12 + 1) = 35/40
  assertClose(corpusChrf(['abc'], ['ab']), 87.5);
});

test('chrF sums statistics over the corpus and ignores hypothesis n-grams a short reference lacks', () => {
  // Pair 1: "abc" vs "ab": n=1 h3 r2 m2; n=2 h2 r1 m1; n=3 the reference has no 3-grams, so
  //   sacreBLEU counts the hypothesis 3-gram as 0, not 1.
  // Pair 2: "xyz" vs "xyz": n=1 h3 r3 m3; n=2 h2 r2 m2; n=3 h1 r1 m1.
  // Totals: n=1 h6 r5 m5 → P 5/6, R 1; n=2 h4 r3 m3 → P 3/4, R 1; n=3 h1 r1 m1 → P 1, R 1.
  // P̄ = (5/6 + 3/4 + 1)/3 = 31/36, R̄ = 1; F2 = 5·(31/36) / (4·31/36 + 1) = 155/160.
  // (Averaging the two sentence scores would give (87.5 + 100)/2 = 93.75 instead.)
  assertClose(corpusChrf(['abc', 'xyz'], ['ab', 'xyz']), 96.875);
});

test('chrF ignores whitespace', () => {
  assertClose(corpusChrf(['a b'], ['ab']), 100);
});

test('chrF counts code points, not UTF-16 units', () => {
  // hyp [😀], ref [😀, b]: n=1 h1 r2 m1 → P 1, R 1/2; n=2 hyp has none.
  // F2 = 5·1·(1/2) / (4 + 1/2) = 5/9
  assertClose(corpusChrf(['😀'], ['😀b']), (100 * 5) / 9);
});

test('chrF of an empty hypothesis is 0', () => {
  assert.equal(corpusChrf([''], ['abc']), 0);
});

test('BLEU from per-segment statistics equals corpus BLEU, with repeated segments as in a bootstrap sample', () => {
  const hyps = ['the cat sat on the mat', 'a dog , barking', 'Save changes before closing ?'];
  const refs = ['the cat sat on a mat', 'the dog barks', 'Save the changes before closing?'];
  const stats = hyps.map((h, i) => segmentBleuStats(h, refs[i]!));
  assert.deepEqual(bleuFromStats(stats), corpusBleu(hyps, refs));
  const draw = [2, 0, 2];
  const resampled = bleuFromStats(draw.map((i) => stats[i]!));
  assert.deepEqual(
    resampled,
    corpusBleu(
      draw.map((i) => hyps[i]!),
      draw.map((i) => refs[i]!),
    ),
  );
  assert.notEqual(resampled.score, corpusBleu(hyps, refs).score);
});
