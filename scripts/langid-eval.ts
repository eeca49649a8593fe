// Language identification accuracy on the dev sets, per language, for messages of 1–3 words and
// of 4+ words: taskmoe's classifier (langid.json, built from train/ only) against the npm
// detectors tinyld and franc, each restricted to the model's languages; and the time per
// 100-character text.
//
//   node --import tsx scripts/langid-eval.ts [--model models/demo] [--dev DIR,DIR]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { francAll } from 'franc';
import { detectAll } from 'tinyld';
import { type LangIdProfile, detect } from '../src/text/detect.ts';
import { DEFAULT_MODEL_DIR } from '../src/translator/index.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: DEFAULT_MODEL_DIR },
    dev: { type: 'string', default: '/work/shared/data/gettext-mt/dev,/work/shared/data/libreoffice-mt/dev' },
  },
});
const profile = JSON.parse(fs.readFileSync(path.join(values.model!, 'langid.json'), 'utf8')) as LangIdProfile;
const languages = profile.languages;
const ISO3: Record<string, string> = {
  en: 'eng',
  de: 'deu',
  es: 'spa',
  fr: 'fra',
  ru: 'rus',
  sv: 'swe',
  uk: 'ukr',
  it: 'ita',
  nl: 'nld',
  pt: 'por',
  pl: 'pol',
  cs: 'ces',
};
const FROM3 = Object.fromEntries(Object.entries(ISO3).map(([a, b]) => [b, a]));

const detectors: Record<string, (t: string) => string | undefined> = {
  taskmoe: (t) => detect(profile, t)[0]?.language,
  tinyld: (t) => detectAll(t, { only: languages })[0]?.lang,
  franc: (t) => FROM3[francAll(t, { only: languages.map((l) => ISO3[l]), minLength: 1 })[0]?.[0] ?? ''],
};

const dev = new Map<string, Set<string>>(languages.map((l) => [l, new Set()]));
for (const dir of values.dev!.split(',')) {
  for (const lang of languages) {
    if (lang === 'en') continue;
    const file = path.join(dir, `en-${lang}.tsv`);
    if (!fs.existsSync(file)) continue;
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const [en, xx] = line.split('\t');
      if (!xx) continue;
      dev.get(lang)!.add(xx);
      dev.get('en')!.add(en);
    }
  }
}
const bucket = (t: string) => (t.trim().split(/\s+/).length <= 3 ? 'short' : 'long');
const names = Object.keys(detectors);
const header = names.flatMap((n) => [`${n} 1–3 words`, `${n} 4+ words`]);
console.log(`| language | messages (1–3 / 4+) | ${header.join(' | ')} |`);
console.log(`|---|---|${header.map(() => '---').join('|')}|`);
const totals: Record<string, { ok: number; n: number }> = {};
for (const lang of languages) {
  const texts = [...dev.get(lang)!];
  const counts = { short: 0, long: 0 };
  for (const t of texts) counts[bucket(t)]++;
  const cells: string[] = [];
  for (const name of names) {
    const ok = { short: 0, long: 0 };
    for (const t of texts) if (detectors[name](t) === lang) ok[bucket(t)]++;
    for (const b of ['short', 'long'] as const) {
      cells.push(`${((100 * ok[b]) / counts[b]).toFixed(1)}%`);
      const key = `${name} ${b}`;
      totals[key] ??= { ok: 0, n: 0 };
      totals[key].ok += ok[b];
      totals[key].n += counts[b];
    }
  }
  console.log(`| ${lang} | ${counts.short} / ${counts.long} | ${cells.join(' | ')} |`);
}
console.log(
  `| all | | ${names.flatMap((n) => ['short', 'long'].map((b) => `${((100 * totals[`${n} ${b}`].ok) / totals[`${n} ${b}`].n).toFixed(1)}%`)).join(' | ')} |`,
);

// Time per 100-character text: dev messages joined and cut into 100-character pieces.
const pieces: string[] = [];
for (const lang of languages) {
  const all = [...dev.get(lang)!].join(' ');
  for (let i = 0; i + 100 <= all.length && pieces.length < 300 * (languages.indexOf(lang) + 1); i += 100)
    pieces.push(all.slice(i, i + 100));
}
for (const name of names) {
  for (const p of pieces.slice(0, 50)) detectors[name](p); // warm-up
  const times: number[] = [];
  for (let rep = 0; rep < 5; rep++) {
    const t0 = process.hrtime.bigint();
    for (const p of pieces) detectors[name](p);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6 / pieces.length);
  }
  times.sort((a, b) => a - b);
  console.log(
    `${name}: median ${(times[2] * 1000).toFixed(1)} µs per 100-character text (${pieces.length} texts, 5 runs)`,
  );
}
