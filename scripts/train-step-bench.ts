// The trainer's step time on real corpus batches (taskmoe bench train draws random ones): a
// training config's model and batch size, its tokenizer and corpora (the first --per-file pairs of
// each file), the batches its own sampler draws. Prints each timed step, then medians.
// Run: node --import tsx scripts/train-step-bench.ts CONFIG.json [--tokenizer FILE] [--data DIR]...
//        [--steps N] [--per-file N]   (TASKMOE_BACKEND picks the backend; native: node)
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend/index.ts';
import { median } from '../src/bench/stats.ts';
import { trainingFlops } from '../src/bench/train.ts';
import { readCorpus } from '../src/data/corpus.ts';
import { Tokenizer } from '../src/tokenizer/index.ts';
import { readTrainConfig } from '../src/train/config.ts';
import { tokenizeCorpus } from '../src/train/data.ts';
import { Trainer, batchTokens } from '../src/train/trainer.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    tokenizer: { type: 'string' },
    data: { type: 'string', multiple: true },
    steps: { type: 'string', default: '6' },
    'per-file': { type: 'string', default: '3000' },
  },
});
if (positionals.length !== 1) throw new Error('usage: train-step-bench.ts CONFIG.json [--tokenizer F] [--data DIR]...');
await initBackend();
const { model: cfg, train: settings } = readTrainConfig(positionals[0]);
const tokenizer = await Tokenizer.load(values.tokenizer ?? settings.tokenizer);
const data = values.data ?? settings.data;
if (data === undefined) throw new Error('no corpus: pass --data DIR or list train.data in the config');
const corpus = await readCorpus(data, { languages: cfg.languages, maxPerFile: Number(values['per-file']) });
const trainer = Trainer.create(cfg, settings, tokenizer, tokenizeCorpus(corpus, tokenizer, cfg.pairs, cfg.maxLength));
const batches = Array.from({ length: Number(values.steps) + 1 }, () => trainer.sampler.next());
trainer.trainOn(batches[0]); // warm-up: kernels and first allocations
const [seconds, tokensPerSecond, flops] = [[], [], []] as number[][];
for (const batch of batches.slice(1)) {
  const start = performance.now();
  const stats = trainer.trainOn(batch);
  const s = (performance.now() - start) / 1000;
  const padded = batch.length * Math.max(...batch.map((e) => e.target.length));
  console.log(
    `step ${stats.step}: ${batch.length} sentences, ${batchTokens(batch)} real tokens (${padded} padded target rows), ` +
      `loss ${stats.loss.toFixed(4)} |g| ${stats.gradNorm.toFixed(4)}, ${s.toFixed(2)} s`,
  );
  seconds.push(s);
  tokensPerSecond.push(stats.tokens / s);
  flops.push(trainingFlops(cfg, batch) / s);
}
console.log(
  `median of ${seconds.length} steps: ${median(seconds).toFixed(2)} s/step, ${median(tokensPerSecond).toFixed(0)} tok/s, ` +
    `${(median(flops) / 1e9).toFixed(1)} useful GFLOP/s`,
);
trainer.dispose();
