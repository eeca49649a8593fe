import { initBackend } from '../src/backend/index.ts';
import { readCorpus, pairsFor } from '../src/data/corpus.ts';
import { Translator } from '../src/translator/index.ts';
await initBackend({ log: () => {} });
const corpus = await readCorpus('/work/shared/data/gettext-mt/dev', { languages: ['en', 'de'], maxPerFile: 400 });
const texts = pairsFor(corpus.files, { source: 'en', target: 'de' }).map((p) => p.source).slice(0, 320);
const dir = { source: 'en', target: 'de' };
const tr = await Translator.load('models/demo', dir, () => {});
const src = tr.encode(texts, dir);
tr.translateIds(src.slice(0, 32), dir, { batchSize: 32 });
const eng = tr.engine as any;
const times: Record<string, number> = {};
for (const m of ['encode', 'start', 'greedy', 'keepRows', 'join', 'merge', 'append']) {
  const f = eng[m];
  if (typeof f !== 'function') continue;
  eng[m] = function (...a: unknown[]) { const t0 = performance.now(); try { return f.apply(this, a); } finally { times[m] = (times[m] ?? 0) + performance.now() - t0; } };
}
const t0 = performance.now();
const out = tr.translateIds(src, dir, { batchSize: 32 });
const dt = performance.now() - t0;
console.log(`${src.length} sentences in ${dt.toFixed(0)} ms = ${(src.length / dt * 1000).toFixed(1)} sentences/s; steps/sentence ${(out.reduce((s, t) => s + t.generatedTokens + 1, 0) / out.length).toFixed(1)}`);
console.log(Object.entries(times).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', '));
console.log(Object.getOwnPropertyNames(Object.getPrototypeOf(eng)).join(' '));
