// The extracted Token/Target decoder against Token/Token on ONNX Runtime at peak batch (issue 17):
// the same random weights (`bench engine`'s group: one shared token-routed encoder), one intra-op
// thread each, the two variants interleaved run by run in one process; end-to-end target tokens/s
// (encode + 32 greedy steps, EOS ignored) and the decoder step alone, medians, beside each step's
// FLOPs and weight bytes from the config.
//
//   node --import tsx src/bench/extracted-ort.ts [--config wmt32] [--batch 32,64] [--reps 3] [--threads 1] [--lock FILE]
//
// --lock FILE: flock(1) that file once the models are built, for the timed runs only, and time
// them at priority 0 (start the build under `nice`).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { OrtEngine } from '../onnx/engine.ts';
import { graphsOf } from '../onnx/parts.ts';
import { ensureBackend } from './backend.ts';
import { OUT_LEN, type Variant, benchConfigs, stepCost, variantConfig } from './engine/costs.ts';
import { buildGroup, hostWeights, sources } from './engine/models.ts';
import { timeDecode, timeSteps } from './engine/onnx.ts';
import { median } from './stats.ts';

const { values } = parseArgs({
  options: {
    config: { type: 'string' },
    batch: { type: 'string' },
    reps: { type: 'string' },
    threads: { type: 'string' },
    lock: { type: 'string' },
  },
});
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
console.log(
  `${name}: ${cfg.moe.numExperts} experts, top-${cfg.moe.topK}; graphs built and sessions loaded in ${((performance.now() - t0) / 1000).toFixed(0)} s; ONNX Runtime ${threads} thread(s), ${reps} interleaved runs per cell`,
);
const release = values.lock === undefined ? () => {} : await holdLock(values.lock);
console.log(
  '| batch | variant | tokens/s (median) | every run | decoder step ms (median) | step GFLOP | step weight MB read | achieved step GFLOP/s |',
);
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
    console.log(
      `| ${batch} | ${v} | ${tps.get(v)!.toFixed(1)} | ${runs
        .get(v)!
        .map((x) => x.toFixed(1))
        .join(
          ', ',
        )} | ${ms.get(v)!.toFixed(1)} | ${gflop.toFixed(2)} | ${(cost.weightBytesPerStep / 1e6).toFixed(0)} | ${(gflop / (ms.get(v)! / 1000)).toFixed(1)} |`,
    );
  }
  console.log(
    `batch ${batch}: task-extracted / token, end to end ${(tps.get('task-extracted')! / tps.get('token')!).toFixed(2)}x, decoder step ${(ms.get('token')! / ms.get('task-extracted')!).toFixed(2)}x`,
  );
}
release();
for (const e of engines.values()) e.dispose();
for (const m of models.values()) m.dispose();

/** Holds an exclusive flock(1) on `file` (a child that waits on its stdin) until the returned function is called. */
async function holdLock(file: string): Promise<() => void> {
  const child = spawn('flock', [file, 'sh', '-c', 'echo locked; read _'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`flock ${file} exited (${code})`)));
  });
  // Built at a lower priority (started under nice); timed at the normal one, every thread.
  for (const tid of fs.readdirSync('/proc/self/task')) os.setPriority(Number(tid), 0);
  return () => child.stdin.end();
}
