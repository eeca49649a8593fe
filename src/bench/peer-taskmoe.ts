// taskmoe's side of bench/peer-transformers.py: the dense wmt32 shape of `bench engine` (Marian's:
// d 512, FFN 2048, 8 heads, 6+6 layers, vocabulary 32000) with random weights, on ONNX Runtime
// (TASKMOE_ONNX_THREADS threads) and on tfjs-wasm. It reads one JSON request a line on stdin,
// {"engine": "onnx" | "wasm", "ids": [[...], ...], "newTokens": N}, greedy-decodes exactly N tokens
// for every source, and answers {"seconds": s} on stdout; the Python side interleaves the runs.
import * as readline from 'node:readline';
import { initBackend } from '../backend/index.ts';
import { decode } from '../models/decoding.ts';
import { type DecoderEngine, TfjsEngine } from '../models/engine.ts';
import { OrtEngine } from '../onnx/engine.ts';
import { DIRECTION, benchConfigs, variantConfig } from './engine/costs.ts';
import { buildGroup, hostWeights } from './engine/models.ts';

interface Request {
  engine: 'onnx' | 'wasm';
  ids: number[][];
  newTokens: number;
}

async function main(): Promise<void> {
  await initBackend({ force: 'wasm', log: () => {} });
  const cfg = benchConfigs(false).wmt32;
  const model = (await buildGroup(cfg, ['dense'], hostWeights(variantConfig(cfg, 'dense'), 2))).get('dense')!;
  const engines: Record<Request['engine'], DecoderEngine> = { onnx: OrtEngine.of(model), wasm: TfjsEngine.of(model) };
  console.log(JSON.stringify({ ready: true, threads: Number(process.env.TASKMOE_ONNX_THREADS ?? 1) }));
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const req = JSON.parse(line) as Request;
    const engine = engines[req.engine];
    const t0 = performance.now();
    const out = decode(
      engine,
      req.ids,
      req.ids.map(() => DIRECTION),
      { bosId: 2, eosId: 3, ignoreEos: true, maxLength: req.newTokens },
    );
    const seconds = (performance.now() - t0) / 1000;
    if (out.some((h) => h[0].tokens.length !== req.newTokens))
      throw new Error('decode did not produce the fixed length');
    console.log(JSON.stringify({ seconds }));
  }
  model.dispose();
}

await main();
