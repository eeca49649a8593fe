// Where the serving engine's time goes on a real model: one pair's sub-network translates dev
// sentences in batches (Translator.translateIds, greedy), with each engine method timed by wrapping
// it (start includes the encode calls it makes). A benchmark, not a test:
//
//   node --import tsx src/bench/ort-profile.ts [--model DIR] [--pair en-de] [--sentences 320] [--batch 32]
import { parseArgs } from 'node:util';
import { initBackend } from '../backend/index.ts';
import { pairsFor, readCorpus } from '../data/corpus.ts';
import { parsePair } from '../models/config.ts';
import { DEFAULT_MODEL_DIR, Translator } from '../translator/index.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    pair: { type: 'string' },
    sentences: { type: 'string' },
    batch: { type: 'string' },
    data: { type: 'string' },
  },
});
const dir = parsePair(values.pair ?? 'en-de');
const batch = Number(values.batch ?? 32);
await initBackend({ log: () => {} });
const corpus = await readCorpus(values.data ?? '/work/shared/data/gettext-mt/dev', {
  languages: [dir.source, dir.target],
  maxPerFile: 400,
});
const texts = pairsFor(corpus.files, dir)
  .map((p) => p.source)
  .slice(0, Number(values.sentences ?? 320));
const translator = await Translator.load(values.model ?? DEFAULT_MODEL_DIR, dir, () => {});
const sources = translator.encode(texts, dir);
translator.translateIds(sources.slice(0, batch), dir, { batchSize: batch }); // warm-up

const engine = translator.engine as unknown as Record<string, (...args: unknown[]) => unknown>;
const spent = new Map<string, { ms: number; calls: number }>();
for (const name of ['start', 'encode', 'greedy', 'keepRows', 'merge']) {
  const method = engine[name];
  if (typeof method !== 'function') continue;
  engine[name] = function (this: unknown, ...args: unknown[]) {
    const t0 = performance.now();
    try {
      return method.apply(this, args);
    } finally {
      const s = spent.get(name) ?? { ms: 0, calls: 0 };
      spent.set(name, { ms: s.ms + performance.now() - t0, calls: s.calls + 1 });
    }
  };
}
const t0 = performance.now();
const out = translator.translateIds(sources, dir, { batchSize: batch });
const ms = performance.now() - t0;
const steps = out.reduce((n, t) => n + t.generatedTokens + 1, 0) / out.length;
console.log(
  `${sources.length} sentences in ${ms.toFixed(0)} ms: ${((sources.length / ms) * 1000).toFixed(1)} sentences/s, ${steps.toFixed(1)} decoder steps a sentence`,
);
console.log('| part | ms | calls | ms per call | share |\n|---|---|---|---|---|');
for (const [name, s] of spent)
  console.log(
    `| ${name} | ${s.ms.toFixed(0)} | ${s.calls} | ${(s.ms / s.calls).toFixed(2)} | ${((100 * s.ms) / ms).toFixed(0)}% |`,
  );
translator.dispose();
