// `taskmoe bench server`'s report: one line per load run as it ends, and the summary table.
import type { LoadResult, ServerBenchResult } from './server.ts';
import { formatRoofline } from './roofline.ts';
import { formatWorkers } from './server-workers.ts';

export function formatRow(r: LoadResult): string {
  const errors =
    Object.entries(r.errors)
      .map(([code, n]) => `${n}x${code}`)
      .join(' ') || 'none';
  const cache =
    r.cache === undefined
      ? ''
      : `, cache hit ratio ${(100 * r.cache.hitRatio).toFixed(1)}% (${r.cache.evictions} evictions)`;
  return `${r.label}: ${r.sentencesPerSecond.toFixed(1)} sentences/s, p50 ${r.p50Ms.toFixed(0)} ms, p99 ${r.p99Ms.toFixed(0)} ms, mean batch ${r.meanBatchSentences.toFixed(1)}, errors ${errors}${cache}`;
}

export function formatSummary(r: ServerBenchResult): string {
  const rounds = (xs: number[] | undefined) => (xs ?? []).map((x) => x.toFixed(1)).join(', ');
  const row = (name: string, x: LoadResult) =>
    `| ${name} | ${x.sentencesPerSecond.toFixed(1)} | ${rounds(x.rounds)} | ${x.p50Ms.toFixed(0)} | ${x.p99Ms.toFixed(0)} | ${x.meanBatchSentences.toFixed(1)} | ${x.cache === undefined ? '' : `${(100 * x.cache.hitRatio).toFixed(1)}% / ${x.cache.evictions}`} |`;
  return [
    `| case | sentences/s (median) | every round | p50 ms | p99 ms | mean batch | cache hits / evictions |`,
    `|---|---|---|---|---|---|---|`,
    row(`batching on (max ${r.overhead.engineBatch})`, r.batching.on),
    row(`max batch 1`, r.batching.off),
    row(`one pair, cache ${r.pairs.cacheMiB} MiB/worker`, r.pairs.one),
    row(`all pairs, cache ${r.pairs.cacheMiB} MiB/worker`, r.pairs.spread),
    `| engine alone, batches of ${r.overhead.engineBatch} | ${r.overhead.engineSentencesPerSecond.toFixed(1)} | ${rounds(r.overhead.engineRounds)} | | | | |`,
    '',
    `batching speedup ${r.batching.speedup.toFixed(2)}x (target >= 5x)`,
    `all pairs / one pair throughput ${r.pairs.ratio.toFixed(2)} (sub-networks ${r.pairs.subnetworksMiB.toFixed(1)} MiB in all, budget ${r.pairs.cacheMiB} MiB per worker)`,
    `server overhead at saturation ${(100 * r.overhead.overhead).toFixed(1)}% (target <= 15%)`,
    formatRoofline(r.roofline, r.batching.on.sentencesPerSecond),
    '',
    formatWorkers(r.workers),
  ].join('\n');
}
