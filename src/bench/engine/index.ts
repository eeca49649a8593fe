// Engine benchmark: end-to-end decoding throughput (encode + greedy decode of a fixed length) of
// one model shape under four routings, with random weights, side by side:
//   dense           Dense/Dense, same shape, no experts;
//   token           Token/Token, the whole model;
//   task            Token/Target, the whole model (every sentence of the batch goes en->de);
//   task-extracted  Token/Target, Seq2Seq.loadSubnetwork for en->de: the decoder is the plain dense
//                   stack with each MoE layer's top-k experts folded into one FFN of width k*dFF.
// Beside the measurements it prints what a decoder step costs per target token (FLOPs, weight
// bytes, cache bytes) from the config alone, the plain 2-D matMul ceiling of the backend, and a
// per-kernel profile of decoder steps, so every ratio can be explained. Results and their
// explanation: bench/results/engine.md.
//
//   taskmoe bench engine [--quick] [--json FILE] [--configs wmt32,e128] [--batch 1,8]
//                        [--variants token,task-extracted] [--reps N]
//
// Files: costs.ts (shapes, variants, analytic costs), models.ts (random weights, building a group),
// measure.ts (timing and profiling), group.ts + group-child.ts (a group's process), format.ts (tables).
//
// Per config, three groups each run in a child process of its own (a fresh wasm heap), driven by
// the parent request by request so that the timed runs of all variants interleave: dense; token;
// task + task-extracted. On wasm the full 450M-parameter Token/Token model plus XNNPACK's packed
// copy of every weight matrix it multiplies nearly fills the 4 GiB heap, which never shrinks, so
// nothing else may share its process (and it may still die; the group is then rebuilt and the run retried).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ensureBackend } from '../backend.ts';
import { median } from '../stats.ts';
import { DEFAULT_CONFIGS, OUT_LEN, SRC_LEN, VARIANTS, type Variant, benchConfigs, repsFor, stepCost } from './costs.ts';
import { fmt, formatCosts, formatMatmuls, formatRows, mib, mparams } from './format.ts';
import { GroupClient, type Prepared, type RequestBody } from './group.ts';
import { type MatmulRow, PROFILED_STEPS, WARMUP_STEPS, matmulCeiling } from './measure.ts';

export { VARIANTS, type Variant } from './costs.ts';

export interface BenchRow {
  config: string;
  variant: Variant;
  batchSize: number;
  /** Target tokens per second, end to end (encode + decode), median of the timed runs. */
  tokensPerSecond: number;
  /** Parameters of the decoder component (not the shared embedding). */
  decoderParams: number;
  /** Bytes the model's tensors hold on the device (embeddings, encoder, decoder). */
  residentBytes: number;
  /** Median seconds of one decode() call, and every timed run. */
  seconds: number;
  runs: number[];
  /** From the fastest run (interference from other processes only ever slows a run down). */
  bestTokensPerSecond: number;
  /** tokensPerSecond / token's at the same config and batch size. */
  ratioToToken: number;
  /** Seconds of the encoder alone at this batch (one run); the rest of `seconds` is the decoder. */
  encodeSeconds: number;
  /** (seconds - encodeSeconds) / 32: one decoder step, with Decoder.start and the argmax spread over the steps. */
  stepSeconds: number;
  /** Target tokens per second of the decoder alone: batch / stepSeconds. */
  decodeTokensPerSecond: number;
  /** Analytic cost of a decoder step (see stepCost). */
  flopsPerToken: number;
  weightBytesPerStep: number;
  weightBytesPerToken: number;
  cacheBytesPerToken: number;
  /** Experts one step reads per MoE layer: expected under uniform routing, and counted in the profiled steps (mean). */
  expertsPerLayer: number;
  expertsPerLayerMeasured: number;
  /** Decoder-step FLOP/s achieved (flopsPerToken * batch / stepSeconds) and the 2-D matMul [B,d]x[d,dFF] ceiling. */
  achievedGflops: number;
  matmulCeilingGflops: number;
  /** Milliseconds per kernel group in a profiled decoder step (median over the profiled steps). */
  profile: Record<string, number>;
}

export interface EngineBenchOptions {
  json?: string;
  quick?: boolean;
  log?: (s: string) => void;
  /** Overrides for experiments: batch sizes, timed runs per cell, configs, variants. */
  batchSizes?: number[];
  reps?: number;
  configs?: string[];
  /** Variant names (checked: an unknown one is an error naming the known ones). */
  variants?: string[];
}

/** How often a group's process may die and be rebuilt per config before its remaining cells are given up. */
const MAX_RESTARTS = 3;

export async function benchEngine(opts: EngineBenchOptions = {}): Promise<BenchRow[]> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const quick = opts.quick ?? false;
  const backend = await ensureBackend(log);
  const batchSizes = [...(opts.batchSizes ?? (quick ? [1, 8] : [1, 8, 32, 64]))].sort((a, b) => a - b);
  const all = benchConfigs(quick);
  const configNames = opts.configs ?? DEFAULT_CONFIGS;
  const unknown = opts.variants?.filter((v) => !(VARIANTS as readonly string[]).includes(v)) ?? [];
  if (unknown.length > 0) throw new Error(`unknown variant ${unknown.join(', ')}; have ${VARIANTS.join(', ')}`);
  const variants = VARIANTS.filter((v) => (opts.variants ?? VARIANTS).includes(v));
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
  const jitBatch = Math.min(8, batchSizes[batchSizes.length - 1]);
  log(
    `engine benchmark on ${backend.description}${quick ? ' (quick)' : ''}, ${os.cpus().length} CPUs, load ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  log(
    `source ${SRC_LEN} tokens, ${OUT_LEN} target tokens (EOS ignored), greedy, en->de for every sentence; ` +
      `timed runs per cell (median): ${batchSizes.map((b) => `B=${b}: ${repsFor(b, quick, opts.reps)}`).join(', ')}, all variants interleaved run by run`,
  );
  log(
    `per config: groups dense | token | task + task-extracted, each in its own process; one untimed decode() per model at B=${jitBatch}, ` +
      `then per batch size (largest first) one timed encode and a warm-up of ${WARMUP_STEPS} decoder steps + ${PROFILED_STEPS} profiled steps per model, then the timed runs`,
  );
  const rows: BenchRow[] = [];
  const matmuls: MatmulRow[] = [];
  const failures: string[] = [];
  let tensorsLeft = 0;
  const baseline = tf.memory().numTensors;
  for (const name of configNames) {
    const cfg = all[name];
    if (cfg === undefined) throw new Error(`unknown config ${name}; have ${Object.keys(all).join(', ')}`);
    log(
      `\n== ${name}: dModel ${cfg.dModel}, dFF ${cfg.dFF}, ${cfg.numHeads} heads, ${cfg.encoderLayers}+${cfg.decoderLayers} layers, ` +
        `${cfg.moe.numExperts} experts in every ${cfg.moe.every}nd layer (top-${cfg.moe.topK}), vocabulary ${cfg.vocabSize} [${elapsed()}]`,
    );
    const ceiling = new Map<number, MatmulRow>();
    for (const b of batchSizes) {
      const ffnRow = matmulCeiling(name, b, cfg.dModel, cfg.dFF, b >= 32 ? 15 : 41);
      ceiling.set(b, ffnRow);
      matmuls.push(ffnRow, matmulCeiling(name, b, cfg.dModel, cfg.vocabSize, b >= 32 ? 7 : 21));
    }
    // token alone: the whole wmt32 Token/Token model plus XNNPACK's packed copies nearly fills wasm's 4 GiB.
    const clients = [['dense'], ['token'], ['task', 'task-extracted']]
      .map((g) => variants.filter((v) => g.includes(v)))
      .filter((g) => g.length > 0)
      .map((g) => new GroupClient({ config: name, quick, variants: g }, log));
    await Promise.all(clients.map((c) => c.start(backend.choice)));
    const infos = new Map(clients.flatMap((c) => c.models.map((m) => [m.variant, m] as const)));
    for (const m of infos.values()) {
      log(
        `  ${m.variant}: decoder ${mparams(m.decoderParams)} params, resident ${mib(m.residentBytes)}, decoder has no experts (plain dense path): ${m.plainDecoder}`,
      );
      if (m.variant === 'task-extracted' && !m.plainDecoder)
        throw new Error('the extracted decoder still holds experts');
    }
    for (const c of clients) await c.call({ cmd: 'jit', batch: jitBatch });
    log(`  built and warmed up [${elapsed()}]`);
    /**
     * A call that survives the child dying (the full Token/Token model runs at the edge of wasm's
     * 4 GiB): the group is rebuilt in a fresh process, warmed up again (at the JIT batch and at
     * `batch`), and the request retried, at most MAX_RESTARTS times per group and config.
     */
    const call = async <T>(c: GroupClient, body: RequestBody, batch: number): Promise<T | undefined> => {
      for (;;) {
        const r = await c.call<T>(body);
        if (r !== undefined || body.cmd === 'finish' || c.crashes.length >= MAX_RESTARTS) return r;
        log(`  restarting ${c.job.variants.join(', ')} after: ${c.failure} [${elapsed()}]`);
        await c.restart(backend.choice);
        await c.call({ cmd: 'jit', batch: jitBatch });
        if (body.cmd === 'run') await c.call({ cmd: 'prepare', batch });
      }
    };
    const cells: BenchRow[] = [];
    for (const b of [...batchSizes].reverse()) {
      const prepared = new Map<GroupClient, Prepared>();
      for (const c of clients) {
        const p = await call<Prepared>(c, { cmd: 'prepare', batch: b }, b);
        if (p !== undefined) prepared.set(c, p);
      }
      const runs = new Map<Variant, number[]>();
      for (let r = 0; r < repsFor(b, quick, opts.reps); r++) {
        for (const c of clients) {
          for (const m of c.models) {
            const seconds = await call<number>(c, { cmd: 'run', batch: b, variant: m.variant }, b);
            if (seconds !== undefined) runs.set(m.variant, [...(runs.get(m.variant) ?? []), seconds]);
          }
        }
      }
      for (const c of clients) {
        const p = prepared.get(c);
        for (const m of c.models) {
          const times = runs.get(m.variant);
          const prof = p?.profiles[m.variant];
          if (p === undefined || prof === undefined || times === undefined) continue;
          const seconds = median(times);
          const cost = stepCost(cfg, m.variant, b);
          // The encode is timed apart from the runs; where a run's median is not above it (noise),
          // the decoder's own time is unknown: NaN, printed as "–", not a huge rate.
          const decodeSeconds = seconds - p.encodeSeconds;
          const stepSeconds = decodeSeconds > 0 ? decodeSeconds / OUT_LEN : NaN;
          const row: BenchRow = {
            config: name,
            variant: m.variant,
            batchSize: b,
            tokensPerSecond: (b * OUT_LEN) / seconds,
            decoderParams: m.decoderParams,
            residentBytes: m.residentBytes,
            seconds,
            runs: times,
            bestTokensPerSecond: (b * OUT_LEN) / Math.min(...times),
            ratioToToken: NaN,
            encodeSeconds: p.encodeSeconds,
            stepSeconds,
            decodeTokensPerSecond: b / stepSeconds,
            flopsPerToken: cost.flopsPerToken,
            weightBytesPerStep: cost.weightBytesPerStep,
            weightBytesPerToken: cost.weightBytesPerToken,
            cacheBytesPerToken: cost.cacheBytesPerToken,
            expertsPerLayer: cost.expertsPerLayer,
            expertsPerLayerMeasured: prof.expertsPerLayer,
            achievedGflops: (b * cost.flopsPerToken) / stepSeconds / 1e9,
            matmulCeilingGflops: ceiling.get(b)!.gflops,
            profile: prof.groups,
          };
          cells.push(row);
          const kernelMs = Object.values(prof.groups).reduce((x, y) => x + y, 0);
          const breakdown = Object.entries(prof.groups)
            .sort((x, y) => y[1] - x[1])
            .filter(([, ms]) => ms >= 0.05 * kernelMs)
            .map(([g, ms]) => `${g} ${ms.toFixed(1)}`)
            .join(', ');
          log(
            `  ${m.variant.padEnd(14)} B=${String(b).padStart(2)}: ${fmt(row.tokensPerSecond).padStart(6)} tok/s  runs ${times.map((t) => t.toFixed(2)).join(' ')} s, ` +
              `encode ${p.encodeSeconds.toFixed(2)} s, step ${(stepSeconds * 1000).toFixed(1)} ms  [heap ${mib(p.heapBytes)}]`,
          );
          log(
            `      profiled step (median of ${PROFILED_STEPS}) ${prof.wallMs.toFixed(1)} ms, kernels ${kernelMs.toFixed(1)} ms: ${breakdown}` +
              (cost.expertsPerLayer > 0 && m.variant === 'token'
                ? `; experts/MoE layer ${prof.expertsPerLayer.toFixed(1)} (uniform routing: ${cost.expertsPerLayer.toFixed(1)})`
                : ''),
          );
        }
      }
      log(`  B=${b} done [${elapsed()}, load ${os.loadavg()[0].toFixed(1)}]`);
    }
    for (const c of clients) {
      const done = await c.call<{ tensorsLeft: number; heapBytes: number }>({ cmd: 'finish' });
      if (done !== undefined) {
        tensorsLeft += done.tensorsLeft;
        log(
          `  disposed ${c.job.variants.join(', ')}: ${done.tensorsLeft === 0 ? 'tensor count back to its baseline' : `WARNING: ${done.tensorsLeft} tensors left`} (peak heap ${mib(done.heapBytes)})`,
        );
      }
      for (const why of c.crashes) failures.push(`${name} ${c.job.variants.join(', ')}: crashed and restarted: ${why}`);
      if (c.failure !== undefined) failures.push(`${name} ${c.job.variants.join(', ')}: gave up: ${c.failure}`);
    }
    for (const r of cells) {
      const tok = cells.find((x) => x.variant === 'token' && x.batchSize === r.batchSize);
      r.ratioToToken = tok ? r.tokensPerSecond / tok.tokensPerSecond : NaN;
    }
    cells.sort((a, b) => VARIANTS.indexOf(a.variant) - VARIANTS.indexOf(b.variant) || a.batchSize - b.batchSize);
    rows.push(...cells);
    log('');
    log(formatCosts(cfg, name, variants, batchSizes));
    log('');
    log(formatMatmuls(matmuls.filter((m) => m.config === name)));
    log('');
    log(formatRows(cells));
  }
  for (const f of failures) log(`process failures: ${f}`);
  const leftHere = tf.memory().numTensors - baseline;
  log(
    `tensors: ${leftHere} left in this process, ${tensorsLeft} left in the benchmark processes after disposing every model; total time ${elapsed()}`,
  );
  if (opts.json !== undefined) {
    fs.mkdirSync(path.dirname(path.resolve(opts.json)), { recursive: true });
    fs.writeFileSync(
      opts.json,
      JSON.stringify({ backend: backend.description, quick, batchSizes, rows, matmuls, failures }, null, 2) + '\n',
    );
    log(`wrote ${opts.json}`);
  }
  return rows;
}
