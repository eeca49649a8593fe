// `taskmoe bench server`, case 4: one pair at saturation on one engine worker against N workers,
// side by side in each round. With N workers the pair's sub-network must spread to every worker by
// itself (replicas follow load, docs/replicas.md); the replica window is short so that it has by
// the end of the warm-up, and each run reports on how many workers the pair ended up.
import { formatRow } from './server-report.ts';
import { type Job, type LoadResult, loadServer, medianRun } from './server.ts';

export interface SaturationSpec {
  model: string;
  jobs: Job[];
  pair: string;
  seconds: number;
  warmupSeconds: number;
  /** Requests in flight per engine worker: saturation for one worker is N times less load than for N. */
  concurrency: number;
}

export interface WorkersComparison {
  workers: number;
  single: LoadResult;
  many: LoadResult;
  /** N workers' throughput over one worker's (target >= 0.85 N). */
  speedup: number;
}

/** One round: the pair on one worker, then on N. */
export async function saturationRound(
  spec: SaturationSpec,
  n: number,
  log: (line: string) => void,
): Promise<{ single: LoadResult; many: LoadResult }> {
  const run = async (workers: number) => {
    const result = await loadServer({
      label: `one pair at saturation, ${workers} worker${workers === 1 ? '' : 's'}, ${spec.concurrency * workers} in flight`,
      model: spec.model,
      jobs: spec.jobs,
      pair: spec.pair,
      seconds: spec.seconds,
      warmupSeconds: spec.warmupSeconds,
      concurrency: spec.concurrency * workers,
      args: ['--workers', String(workers), '--replica-window-ms', '500'],
    });
    log(`${formatRow(result)}, ${spec.pair} on ${result.replicas ?? '?'} of ${workers} workers`);
    return result;
  };
  return { single: await run(1), many: await run(n) };
}

export function compareWorkers(single: LoadResult[], many: LoadResult[], workers: number): WorkersComparison {
  const [s, m] = [medianRun(single), medianRun(many)];
  return { workers, single: s, many: m, speedup: m.sentencesPerSecond / s.sentencesPerSecond };
}

export function formatWorkers(r: WorkersComparison): string {
  const rounds = (x: LoadResult) => (x.rounds ?? []).map((v) => v.toFixed(1)).join(', ');
  const row = (x: LoadResult, n: number) =>
    `| ${n} | ${x.sentencesPerSecond.toFixed(1)} | ${rounds(x)} | ${x.p50Ms.toFixed(0)} | ${x.p99Ms.toFixed(0)} | ${x.meanBatchSentences.toFixed(1)} | ${x.replicas ?? '?'} |`;
  return [
    `| engine workers | sentences/s (median) | every round | p50 ms | p99 ms | mean batch | workers holding the pair |`,
    `|---|---|---|---|---|---|---|`,
    row(r.single, 1),
    row(r.many, r.workers),
    '',
    `one pair, ${r.workers} workers / 1 worker: ${r.speedup.toFixed(2)}x (target >= ${(0.85 * r.workers).toFixed(2)}x, 0.85 x ${r.workers})`,
  ].join('\n');
}
