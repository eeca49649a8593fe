// `taskmoe bench server --settings "A;B;..."`: server settings side by side on one pair, in one run.
// Each case is a string of `taskmoe serve` flags ("" or "default": the defaults); every round runs
// each case at saturation (the bench's requests in flight) and with one request in flight (its
// single-request latency), then the one-pair comparison of 1 and N workers, so a default change is
// judged against the current defaults under the same spell of the machine.
import { formatRow } from './server-report.ts';
import {
  type SaturationSpec,
  type WorkersComparison,
  compareWorkers,
  formatWorkers,
  saturationRound,
} from './server-workers.ts';
import { type LoadResult, loadServer, medianRun } from './server.ts';

export interface SettingsSpec extends SaturationSpec {
  rounds: number;
  workers: number;
  /** `taskmoe serve` flags of each case, e.g. ["default", "--max-delay-ms 30"]. */
  cases: string[];
}

export interface SettingsCase {
  flags: string;
  saturation: LoadResult;
  single: LoadResult;
  /** Saturation throughput over the first case's. */
  ratio: number;
}

export interface SettingsComparison {
  cases: SettingsCase[];
  workers: WorkersComparison;
}

/** "--max-delay-ms 30 --workers 1" -> its argv; "default" and "" -> none. */
export function caseArgs(flags: string): string[] {
  const trimmed = flags.trim();
  return trimmed === '' || trimmed === 'default' ? [] : trimmed.split(/\s+/);
}

export async function compareSettings(spec: SettingsSpec, log: (line: string) => void): Promise<SettingsComparison> {
  const saturation = spec.cases.map(() => [] as LoadResult[]);
  const single = spec.cases.map(() => [] as LoadResult[]);
  const workersSingle: LoadResult[] = [];
  const workersMany: LoadResult[] = [];
  const run = (label: string, args: string[], concurrency: number, seconds: number) =>
    loadServer({ ...spec, label, args, concurrency, seconds });
  for (let round = 1; round <= spec.rounds; round++) {
    log(`round ${round}/${spec.rounds}`);
    for (const [i, flags] of spec.cases.entries()) {
      const args = caseArgs(flags);
      const label = args.length === 0 ? 'defaults' : args.join(' ');
      saturation[i].push(await run(`${label}, ${spec.concurrency} in flight`, args, spec.concurrency, spec.seconds));
      log(formatRow(saturation[i].at(-1)!));
      single[i].push(await run(`${label}, 1 in flight`, args, 1, Math.max(2, Math.ceil(spec.seconds / 2))));
      log(formatRow(single[i].at(-1)!));
    }
    const r = await saturationRound(spec, spec.workers, log);
    workersSingle.push(r.single);
    workersMany.push(r.many);
  }
  const sat = saturation.map(medianRun);
  return {
    cases: spec.cases.map((flags, i) => ({
      flags,
      saturation: sat[i],
      single: medianRun(single[i]),
      ratio: sat[i].sentencesPerSecond / sat[0].sentencesPerSecond,
    })),
    workers: compareWorkers(workersSingle, workersMany, spec.workers),
  };
}

export function formatSettings(r: SettingsComparison, concurrency: number): string {
  const rounds = (x: LoadResult) => (x.rounds ?? []).map((v) => v.toFixed(1)).join(', ');
  return [
    `| serve flags | sentences/s at ${concurrency} in flight (median) | every round | vs first | p50 / p99 ms | mean batch | 1 in flight: p50 ms (sentences/s) |`,
    `|---|---|---|---|---|---|---|`,
    ...r.cases.map(
      (c) =>
        `| ${caseArgs(c.flags).join(' ') || 'defaults'} | ${c.saturation.sentencesPerSecond.toFixed(1)} | ${rounds(c.saturation)} | ${c.ratio.toFixed(2)}x | ${c.saturation.p50Ms.toFixed(0)} / ${c.saturation.p99Ms.toFixed(0)} | ${c.saturation.meanBatchSentences.toFixed(1)} | ${c.single.p50Ms.toFixed(1)} (${c.single.sentencesPerSecond.toFixed(1)}) |`,
    ),
    '',
    formatWorkers(r.workers),
  ].join('\n');
}
