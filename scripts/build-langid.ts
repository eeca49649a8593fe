// Builds a model's language-identification profile (langid.json, next to its config.json) from
// the training corpus alone: the non-English side of each train/en-XX.tsv for XX, and the English
// side of all of them for English, for the languages the model serves.
//
//   node --import tsx scripts/build-langid.ts [--model models/demo] [--train /work/shared/data/gettext-mt/train] [--per-language 20000]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { trainProfile } from '../src/text/detect.ts';
import { DEFAULT_MODEL_DIR } from '../src/translator/index.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: DEFAULT_MODEL_DIR },
    train: { type: 'string', default: '/work/shared/data/gettext-mt/train' },
    'per-language': { type: 'string', default: '20000' },
  },
});
const perLanguage = Number(values['per-language']);
const { languages } = JSON.parse(fs.readFileSync(path.join(values.model!, 'config.json'), 'utf8')) as {
  languages: string[];
};
const samples = new Map<string, string[]>(languages.map((l) => [l, []]));
for (const lang of languages) {
  if (lang === 'en') continue;
  const file = path.join(values.train!, `en-${lang}.tsv`);
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const [en, xx] = line.split('\t');
    if (!xx) continue;
    samples.get(lang)!.push(xx);
    if (samples.has('en')) samples.get('en')!.push(en);
  }
}
// An even spread of each language's sentences, the same count for each (a uniform prior).
for (const [lang, texts] of samples) {
  const unique = [...new Set(texts)];
  const step = Math.max(1, unique.length / perLanguage);
  samples.set(
    lang,
    Array.from({ length: Math.min(perLanguage, unique.length) }, (_, i) => unique[Math.floor(i * step)]),
  );
}
const profile = trainProfile(samples);
const out = path.join(values.model!, 'langid.json');
fs.writeFileSync(out, JSON.stringify(profile));
console.log(
  `${out}: ${Object.keys(profile.grams).length} n-grams, ${languages.map((l) => `${l} ${samples.get(l)!.length}`).join(', ')} sentences`,
);
