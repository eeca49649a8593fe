// How the ONNX decoder step should hand its KV cache back: the outputs the binding returns, fed
// back as the next step's inputs (default), or written into preallocated buffers
// (TASKMOE_ONNX_CACHE=preallocated). Both run on one engine, their steps interleaved one by one so
// that load from other processes hits both alike; medians over cache lengths 24..63.
//
//   node --import tsx src/bench/onnx-kv-cache.ts [--quick]
import { initBackend } from '../backend/index.ts';
import { OrtEngine } from '../onnx/engine.ts';
import { graphsOf } from '../onnx/parts.ts';
import { DIRECTION, benchConfigs, variantConfig } from './engine/costs.ts';
import { buildGroup, hostWeights } from './engine/models.ts';
import { median } from './stats.ts';

const MODES = ['fetched', 'preallocated'] as const;

async function main(): Promise<void> {
  await initBackend({ force: 'wasm', log: () => {} });
  const cfg = benchConfigs(process.argv.includes('--quick')).wmt32;
  const model = (await buildGroup(cfg, ['dense'], hostWeights(variantConfig(cfg, 'dense'), 2))).get('dense')!;
  const engine = OrtEngine.fromGraphs(graphsOf(model), { threads: 1 });
  for (const batch of [8, 32]) {
    const src = Array.from({ length: batch }, (_, b) =>
      Array.from({ length: 32 }, (_, t) => 4 + ((b * 131 + t * 17) % (cfg.vocabSize - 4))),
    );
    const times = new Map<string, number[]>(MODES.map((m) => [m, []]));
    const states = MODES.map(() =>
      engine.start(
        src,
        src.map(() => DIRECTION),
      ),
    );
    const tokens = MODES.map(() => src.map(() => 2));
    for (let step = 0; step < cfg.maxLength - 1; step++) {
      MODES.forEach((mode, m) => {
        process.env.TASKMOE_ONNX_CACHE = mode;
        const t0 = performance.now();
        tokens[m] = Array.from(engine.greedy(states[m], tokens[m]).best);
        if (step >= 24) times.get(mode)!.push(performance.now() - t0);
      });
    }
    console.log(
      `B=${batch} decoder step, ms (cache 24-${cfg.maxLength - 1}, median): ${MODES.map((m) => `${m} ${median(times.get(m)!).toFixed(2)}`).join(', ')}`,
    );
  }
  engine.dispose();
  model.dispose();
}

await main();
