// The extracted Token/Target decoder against Token/Token on ONNX Runtime at peak batch (issue 17):
// the same random weights (`bench engine`'s group: one shared token-routed encoder), one intra-op
// thread each, the two variants interleaved run by run in one process; end-to-end target tokens/s
// (encode + 32 greedy steps, EOS ignored) and the decoder step alone, medians, beside each step's
// FLOPs and weight bytes from the config.
//
//   node --import tsx src/bench/extracted-ort.ts [--config wmt32] [--batch 32,64] [--reps 3] [--threads 1]
import { parseArgs } from 'node:util';
import { OrtEngine, graphsOf } from '../onnx/engine.ts';
import { ensureBackend } from './backend.ts';
import { OUT_LEN, type Variant, benchConfigs, stepCost, variantConfig } from './engine/costs.ts';
import { buildGroup, hostWeights, sources } from './engine/models.ts';
import { timeDecode, timeSteps } from './engine/onnx.ts';
import { median } from './stats.ts';

const { values } = parseArgs({ options: { config: { type: 'string' }, batch: { type: 'string' }, reps: { type: 'string' }, threads: { type: 'string' } } });
const name = values.config ?? 'wmt32';
const batches = (values.batch ?? '32,64').split(',').map(Number);
const reps = Number(values.reps ?? 3);
const threads = Number(values.threads ?? 1);
const cfg = benchConfigs(false)[name];
if (cfg === undefined) throw new Error(`unknown config "${name}"`);
const variants: Variant[] = ['token', 'task-extracted'];

await ensureBackend(() => {});
const t0 = performance.now();
const models = await buildGroup(cfg, variants, hostWeights(variantConfig(cfg, 'task'), 1));
const engines = new Map(variants.map((v) => [v, OrtEngine.fromGraphs(graphsOf(models.get(v)!), { threads })]));
console.log(`${name}: ${cfg.moe.numExperts} experts, top-${cfg.moe.topK}; graphs built and sessions loaded in ${((performance.now() - t0) / 1000).toFixed(0)} s; ONNX Runtime ${threads} thread(s), ${reps} interleaved runs per cell`);
console.log('| batch | variant | tokens/s (median) | every run | decoder step ms (median) | step GFLOP | step weight MB read | achieved step GFLOP/s |');
console.log('|---|---|---|---|---|---|---|---|');
for (const batch of batches) {
  const src = sources(batch, cfg.vocabSize, 1000 + batch);
  const runs = new Map(variants.map((v) => [v, [] as number[]]));
  const steps = new Map(variants.map((v) => [v, [] as number[]]));
  for (const v of variants) timeDecode(engines.get(v)!, src.slice(0, 1)); // warm-up
  for (let r = 0; r < reps; r++) {
    // Alternate which goes first, so that neither always follows the other.
    for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
      runs.get(v)!.push((batch * OUT_LEN) / timeDecode(engines.get(v)!, src));
      steps.get(v)!.push(...timeSteps(engines.get(v)!, src, 8));
    }
  }
  const tps = new Map(variants.map((v) => [v, median(runs.get(v)!)]));
  const ms = new Map(variants.map((v) => [v, median(steps.get(v)!)]));
  for (const v of variants) {
    const cost = stepCost(cfg, v, batch);
    const gflop = (cost.flopsPerToken * batch) / 1e9;
    console.log(`| ${batch} | ${v} | ${tps.get(v)!.toFixed(1)} | ${runs.get(v)!.map((x) => x.toFixed(1)).join(', ')} | ${ms.get(v)!.toFixed(1)} | ${gflop.toFixed(2)} | ${(cost.weightBytesPerStep / 1e6).toFixed(0)} | ${(gflop / (ms.get(v)! / 1000)).toFixed(1)} |`);
  }
  console.log(`batch ${batch}: task-extracted / token, end to end ${(tps.get('task-extracted')! / tps.get('token')!).toFixed(2)}x, decoder step ${(ms.get('token')! / ms.get('task-extracted')!).toFixed(2)}x`);
}
for (const e of engines.values()) e.dispose();
for (const m of models.values()) m.dispose();
