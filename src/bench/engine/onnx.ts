// The engine benchmark's ONNX Runtime column: the same random models as `bench engine` (same
// shapes, weights, sources: 32 source tokens, 32 greedy target tokens, EOS ignored) decoded by
// tfjs-wasm and by ONNX Runtime at each thread count, runs interleaved in one process, medians.
// Beside end to end tokens/s it times decoder steps alone (after the encoder and start).
//
//   taskmoe bench engine --onnx [--quick] [--configs wmt32] [--variants dense,task-extracted]
//                               [--batch 1,8,32] [--threads 1,2] [--reps N] [--json FILE]
import * as fs from 'node:fs';
import { decode } from '../../models/decoding.ts';
import { type DecoderEngine, TfjsEngine } from '../../models/engine.ts';
import { OrtEngine } from '../../onnx/engine.ts';
import { graphsOf } from '../../onnx/parts.ts';
import { ensureBackend } from '../backend.ts';
import { median } from '../stats.ts';
import { BOS, DIRECTION, EOS, OUT_LEN, SRC_LEN, VARIANTS, type Variant, benchConfigs, variantConfig } from './costs.ts';
import { buildGroup, hostWeights, sources } from './models.ts';

export interface OnnxBenchOptions {
  quick?: boolean;
  configs?: string[];
  variants?: string[];
  batchSizes?: number[];
  threads?: number[];
  reps?: number;
  json?: string;
  log?: (s: string) => void;
}

export interface OnnxBenchRow {
  config: string;
  variant: Variant;
  batchSize: number;
  /** 'wasm' or 'onnx-<threads>t'. */
  engine: string;
  /** Target tokens per second end to end (encode + 32 steps), median. */
  tokensPerSecond: number;
  /** Milliseconds per decoder step alone, median over the timed steps. */
  stepMs: number;
  runs: number[];
}

// Seconds of one end-to-end greedy decode of OUT_LEN tokens.
export function timeDecode(engine: DecoderEngine, src: number[][]): number {
  const t0 = performance.now();
  const out = decode(
    engine,
    src,
    src.map(() => DIRECTION),
    { bosId: BOS, eosId: EOS, ignoreEos: true, maxLength: OUT_LEN },
  );
  const dt = (performance.now() - t0) / 1000;
  if (out.some((h) => h[0].tokens.length !== OUT_LEN)) throw new Error('decode did not produce the fixed length');
  return dt;
}

// Milliseconds of each of `steps` greedy decoder steps after start (the cache grows from 0).
export function timeSteps(engine: DecoderEngine, src: number[][], steps: number): number[] {
  const state = engine.start(
    src,
    src.map(() => DIRECTION),
  );
  const times: number[] = [];
  let tokens = src.map(() => BOS);
  try {
    for (let s = 0; s < steps; s++) {
      const t0 = performance.now();
      const { best } = engine.greedy(state, tokens);
      times.push(performance.now() - t0);
      tokens = Array.from(best);
    }
  } finally {
    engine.disposeState(state);
  }
  return times;
}

export async function benchEngineOnnx(opts: OnnxBenchOptions = {}): Promise<OnnxBenchRow[]> {
  const log = opts.log ?? console.log;
  const backend = await ensureBackend(log);
  const quick = opts.quick ?? false;
  const all = benchConfigs(quick);
  const configs = opts.configs ?? ['wmt32'];
  const variants = (opts.variants ?? ['dense', 'task-extracted']) as Variant[];
  for (const v of variants)
    if (!VARIANTS.includes(v)) throw new Error(`unknown variant "${v}"; known: ${VARIANTS.join(', ')}`);
  const batches = opts.batchSizes ?? [1, 8, 32];
  const threads = opts.threads ?? [1, 2];
  const reps = opts.reps ?? (quick ? 2 : 3);
  log(
    `ONNX Runtime beside ${backend.description}: source ${SRC_LEN} tokens, ${OUT_LEN} target tokens (greedy, EOS ignored), ${reps} interleaved runs per cell, medians`,
  );
  const rows: OnnxBenchRow[] = [];
  for (const name of configs) {
    const cfg = all[name];
    if (cfg === undefined) throw new Error(`unknown config "${name}"; known: ${Object.keys(all).join(', ')}`);
    for (const variant of variants) {
      const dense = variant === 'dense';
      const host = hostWeights(variantConfig(cfg, dense ? 'dense' : 'task'), dense ? 2 : 1); // as bench engine's groups
      const model = (await buildGroup(cfg, [variant], host)).get(variant)!;
      const t0 = performance.now();
      const graphs = graphsOf(model);
      const engines: [string, DecoderEngine][] = [['wasm', TfjsEngine.of(model)]];
      for (const t of threads) engines.push([`onnx-${t}t`, OrtEngine.fromGraphs(graphs, { threads: t })]);
      log(
        `${name} ${variant}: graphs built and sessions loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s (${((graphs.encoder.byteLength + graphs.decoderStart.byteLength + graphs.decoderStep.byteLength) / 2 ** 20).toFixed(0)} MiB of ONNX)`,
      );
      for (const batch of batches) {
        const src = sources(batch, cfg.vocabSize, 1000 + batch);
        const runs = new Map<string, number[]>(engines.map(([e]) => [e, []]));
        const steps = new Map<string, number[]>(engines.map(([e]) => [e, []]));
        for (const [, engine] of engines) timeDecode(engine, src.slice(0, 1)); // warm-up
        for (let r = 0; r < reps; r++) {
          for (const [e, engine] of engines) {
            runs.get(e)!.push(timeDecode(engine, src));
            steps.get(e)!.push(...timeSteps(engine, src, 8));
          }
        }
        for (const [e] of engines) {
          const row = {
            config: name,
            variant,
            batchSize: batch,
            engine: e,
            tokensPerSecond: (batch * OUT_LEN) / median(runs.get(e)!),
            stepMs: median(steps.get(e)!),
            runs: runs.get(e)!,
          };
          rows.push(row);
          log(
            `  B=${String(batch).padStart(2)} ${e.padEnd(8)} ${row.tokensPerSecond.toFixed(1).padStart(8)} tokens/s  step ${row.stepMs.toFixed(2)} ms`,
          );
        }
      }
      for (const [, engine] of engines) if (engine instanceof OrtEngine) engine.dispose();
      model.dispose();
    }
  }
  log('\n' + formatOnnxRows(rows));
  if (opts.json !== undefined) fs.writeFileSync(opts.json, JSON.stringify(rows, null, 2));
  return rows;
}

/** A markdown table: per config, variant and batch, each engine's tokens/s and step time, and ONNX over wasm. */
export function formatOnnxRows(rows: OnnxBenchRow[]): string {
  const engines = [...new Set(rows.map((r) => r.engine))];
  const header = [
    'config',
    'variant',
    'batch',
    ...engines.map((e) => `${e} tok/s (step ms)`),
    ...engines.filter((e) => e !== 'wasm').map((e) => `${e} / wasm`),
  ];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  const keys = [...new Set(rows.map((r) => `${r.config}\t${r.variant}\t${r.batchSize}`))];
  for (const key of keys) {
    const [config, variant, batch] = key.split('\t');
    const cell = (e: string) =>
      rows.find((r) => r.config === config && r.variant === variant && String(r.batchSize) === batch && r.engine === e);
    const wasm = cell('wasm');
    const values = engines.map((e) => {
      const r = cell(e);
      return r === undefined ? '' : `${r.tokensPerSecond.toFixed(1)} (${r.stepMs.toFixed(2)})`;
    });
    const ratios = engines
      .filter((e) => e !== 'wasm')
      .map((e) => {
        const r = cell(e);
        return r && wasm ? `${(r.tokensPerSecond / wasm.tokensPerSecond).toFixed(2)}x` : '';
      });
    lines.push(`| ${config} | ${variant} | ${batch} | ${values.join(' | ')} | ${ratios.join(' | ')} |`);
  }
  return lines.join('\n');
}
