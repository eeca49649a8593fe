// Language identification among the languages a model serves: a multinomial naive Bayes over
// character 1- to 4-grams, trained on the model's own training corpus (scripts/build-langid.ts),
// stored with the model as langid.json. On the dev sets it beats the npm detectors (tinyld,
// franc-min) restricted to the same languages; docs/libretranslate.md has the table.

import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LangIdProfile {
  /** Character n-gram orders used. */
  orders: number[];
  languages: string[];
  /** Per n-gram, its log-probability in each language (in `languages` order), to 3 decimals. */
  grams: Record<string, number[]>;
}

export interface Detection {
  language: string;
  /** 0–100, as LibreTranslate reports it. */
  confidence: number;
}

/** The text as the classifier sees it: lower case, letters and apostrophes, words padded with spaces. */
export function normalize(text: string): string {
  return ` ${text
    .toLowerCase()
    .replace(/\{\d+\}|%\w+|&\w+;|https?:\S+/g, ' ')
    .replace(/[^\p{L}'’]+/gu, ' ')
    .trim()} `;
}

/** Each n-gram of the normalized text, with repeats. */
export function ngrams(norm: string, orders: number[]): string[] {
  const chars = [...norm];
  const out: string[] = [];
  for (const n of orders) {
    for (let i = 0; i + n <= chars.length; i++) {
      const g = chars.slice(i, i + n).join('');
      if (g !== ' ' && !(n > 1 && g.trim() === '')) out.push(g);
    }
  }
  return out;
}

/** Builds a profile from sample texts per language: the `keep` most frequent n-grams of each, add-one smoothed. */
export function trainProfile(samples: Map<string, string[]>, orders = [1, 2, 3, 4], keep = 8000): LangIdProfile {
  const languages = [...samples.keys()];
  const counts = languages.map((lang) => {
    const c = new Map<string, number>();
    for (const text of samples.get(lang)!)
      for (const g of ngrams(normalize(text), orders)) c.set(g, (c.get(g) ?? 0) + 1);
    return c;
  });
  const vocab = new Set<string>();
  for (const c of counts) for (const [g] of [...c].sort((a, b) => b[1] - a[1]).slice(0, keep)) vocab.add(g);
  const totals = counts.map((c) => [...vocab].reduce((s, g) => s + (c.get(g) ?? 0), 0));
  const grams: Record<string, number[]> = {};
  for (const g of vocab) {
    grams[g] = counts.map(
      (c, l) => Math.round(1000 * Math.log(((c.get(g) ?? 0) + 1) / (totals[l] + vocab.size))) / 1000,
    );
  }
  return { orders, languages, grams };
}

/** The profile's languages for `text`, best first; `among` limits them (e.g. to a model's languages). */
export function detect(profile: LangIdProfile, text: string, among?: string[]): Detection[] {
  const idx = profile.languages
    .map((l, i) => (among === undefined || among.includes(l) ? i : -1))
    .filter((i) => i >= 0);
  const score = new Float64Array(profile.languages.length);
  let seen = 0;
  for (const g of ngrams(normalize(text), profile.orders)) {
    const lp = profile.grams[g];
    if (lp === undefined) continue;
    seen++;
    for (const i of idx) score[i] += lp[i];
  }
  if (seen === 0) return idx.map((i) => ({ language: profile.languages[i], confidence: 0 }));
  // Posterior under a uniform prior.
  const best = Math.max(...idx.map((i) => score[i]));
  const weights = idx.map((i) => Math.exp(score[i] - best));
  const total = weights.reduce((a, b) => a + b, 0);
  return idx
    .map((i, k) => ({ language: profile.languages[i], confidence: Math.round((1000 * weights[k]) / total) / 10 }))
    .sort((a, b) => b.confidence - a.confidence);
}

/** A model directory's profile (langid.json), or undefined when it has none. */
export function loadProfile(modelDir: string): LangIdProfile | undefined {
  const file = path.join(modelDir, 'langid.json');
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as LangIdProfile) : undefined;
}
