// The trainer on each CPU backend, side by side: wasm (1 and N worker threads, one core each) and
// TensorFlow's native kernels (tfjs-node, one thread whose kernels use 2 cores). Each backend runs
// in a child process of its own, one after the other, on the same random batches.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type TrainBenchOptions, type TrainBenchResult, type TrainRun, formatRun } from './train.ts';

export interface BackendCandidate {
  /** TASKMOE_BACKEND value. */
  backend: 'wasm' | 'node';
  /** How the report names it. */
  label: string;
  /** Worker threads to time (1 always; more when > 1). */
  workers: number;
  env: Record<string, string>;
}

export interface BackendTiming {
  candidate: BackendCandidate;
  /** Absent when the backend did not load or the run failed (then `error` says why). */
  result?: TrainBenchResult;
  error?: string;
}

/** The trainer's choice: a backend and its worker threads. */
export interface TrainingChoice {
  backend: 'wasm' | 'node';
  workers: number;
  run: TrainRun;
  ceiling: number;
}

/** wasm with `wasmWorkers` threads (and 1), then native with TensorFlow's intra-op pool at 2 threads. */
export function trainingCandidates(wasmWorkers: number): BackendCandidate[] {
  return [
    { backend: 'wasm', label: 'wasm', workers: wasmWorkers, env: {} },
    {
      backend: 'node',
      label: 'native (tfjs-node, 2 threads)',
      workers: 1,
      env: { TF_NUM_INTRAOP_THREADS: '2', TF_NUM_INTEROP_THREADS: '1' },
    },
  ];
}

// options, candidate -> the child's result, or why it has none
function probe(candidate: BackendCandidate, opts: TrainBenchOptions): Promise<BackendTiming> {
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = fileURLToPath(new URL(`./train-probe.${fromSource ? 'ts' : 'js'}`, import.meta.url));
  const args = [
    ...(fromSource ? ['--import', import.meta.resolve('tsx')] : []),
    entry,
    JSON.stringify({ ...opts, workers: candidate.workers }),
  ];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...candidate.env, TASKMOE_BACKEND: candidate.backend },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => {
    child.on('error', (err) => resolve({ candidate, error: err.message }));
    child.on('close', (code) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      if (code === 0 && line.startsWith('{')) resolve({ candidate, result: JSON.parse(line) as TrainBenchResult });
      else resolve({ candidate, error: lastLines(stderr) || `exited with status ${code}` });
    });
  });
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ');
}

/** Times every candidate, one at a time. */
export async function compareTrainingBackends(
  candidates: BackendCandidate[],
  opts: TrainBenchOptions,
): Promise<BackendTiming[]> {
  const timings: BackendTiming[] = [];
  for (const candidate of candidates) timings.push(await probe(candidate, opts));
  return timings;
}

/** The backend and worker count with the most tokens/s; undefined when none ran. */
export function fastest(timings: BackendTiming[]): TrainingChoice | undefined {
  let best: TrainingChoice | undefined;
  for (const { candidate, result } of timings) {
    for (const run of result?.runs ?? []) {
      if (best === undefined || run.tokensPerSecond > best.run.tokensPerSecond) {
        best = { backend: candidate.backend, workers: run.workers, run, ceiling: result!.ceiling };
      }
    }
  }
  return best;
}

/** One line per backend and worker count: tokens/s and the fraction of that run's own matMul ceiling. */
export function formatTimings(timings: BackendTiming[]): string[] {
  return timings.flatMap(({ candidate, result, error }) => {
    if (result === undefined) return [`${candidate.label}: not available (${error})`];
    return [
      `${candidate.label}: plain 2-D matMul [1024,256]x[256,1024] ${(result.ceiling / 1e9).toFixed(2)} GFLOP/s`,
      ...result.runs.map((run) => `  ${formatRun(run, result.ceiling)}`),
    ];
  });
}

export function describeChoice(choice: TrainingChoice): string {
  return `${choice.backend === 'node' ? 'native (tfjs-node)' : 'wasm'} with ${choice.workers} worker${choice.workers > 1 ? 's' : ''}, ${choice.run.tokensPerSecond.toFixed(0)} tok/s`;
}

/** `taskmoe bench train` without a forced backend: every CPU backend at a training config's shape and batch size. */
export async function benchTrainBackends(opts: TrainBenchOptions & { json?: string }): Promise<void> {
  const config = opts.config ?? fileURLToPath(new URL('../../models/demo-train.json', import.meta.url));
  const { json, ...rest } = opts;
  const timings = await compareTrainingBackends(trainingCandidates(Math.max(2, opts.workers ?? 2)), {
    ...rest,
    config,
  });
  const shape = timings.find((t) => t.result !== undefined)?.result;
  if (shape !== undefined)
    console.log(
      `trainer at ${config}'s shape: d${shape.dModel}, ${shape.batchTokens} batch tokens, median of ${shape.steps} steps after one warm-up step, each backend in its own process:`,
    );
  for (const line of formatTimings(timings)) console.log(line);
  const choice = fastest(timings);
  if (choice !== undefined) {
    const others = timings
      .flatMap((t) => (t.result?.runs ?? []).map((run) => run.tokensPerSecond))
      .filter((r) => r !== choice.run.tokensPerSecond);
    const ratio =
      others.length > 0 ? ` (${(choice.run.tokensPerSecond / Math.max(...others)).toFixed(2)}x the next best)` : '';
    console.log(`fastest: ${describeChoice(choice)}${ratio}; \`taskmoe train\` picks it where both backends load`);
  }
  if (json !== undefined) writeFileSync(json, JSON.stringify({ config, timings, choice }, null, 2) + '\n');
}
