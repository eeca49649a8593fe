// Paired bootstrap resampling (Koehn 2004, as sacreBLEU's --paired-bs) over the routing study's
// dev subsets: how sure is a difference in dev BLEU between two routings? Reads the hypotheses
// `taskmoe eval --hypotheses` left in RUN_DIR/KIND/hyp/, and prints a markdown table.
// Each resample draws, per direction, as many sentences as it has (with replacement), the same
// draw for every model; a model's score on it is its mean corpus BLEU over the directions, as in
// the study's tables. The interval is the 2.5th–97.5th percentile of the paired difference;
// "p" is the share of resamples where the difference is zero or the other way round.
// Run: node --import tsx scripts/routing-bootstrap.ts [RUN_DIR] [RESAMPLES (default 1000)]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bleuFromStats, segmentBleuStats, type BleuStats } from '../src/eval/bleu-chrf.ts';
import { Rng } from '../src/util/random.ts';
import { KINDS } from './routing-kinds.ts';

interface Hypotheses {
  sources: string[];
  references: string[];
  hypotheses: string[];
}

/** The comparisons the paper's ordering makes: [better, worse] by its claim. */
const COMPARISONS: [string, string][] = [
  ['token-target', 'dense'],
  ['token-token', 'dense'],
  ['token-target', 'token-token'],
  ['token-pair', 'dense'],
  ['sentence-target', 'dense'],
];

// run -> kind -> direction -> segment statistics
function load(run: string): Map<string, Map<string, BleuStats[]>> {
  const out = new Map<string, Map<string, BleuStats[]>>();
  for (const { kind } of KINDS) {
    const dir = path.join(run, kind, 'hyp');
    if (!fs.existsSync(dir)) continue;
    const byDirection = new Map<string, BleuStats[]>();
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.json'))) {
      const h = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Hypotheses;
      byDirection.set(
        path.basename(file, '.json'),
        h.hypotheses.map((hyp, i) => segmentBleuStats(hyp, h.references[i]!)),
      );
    }
    out.set(kind, byDirection);
  }
  return out;
}

// segment statistics per direction, indices per direction -> mean corpus BLEU over the directions
function meanBleu(byDirection: Map<string, BleuStats[]>, draws: Map<string, number[]>): number {
  let sum = 0;
  for (const [direction, idx] of draws) {
    const stats = byDirection.get(direction)!;
    sum += bleuFromStats(idx.map((i) => stats[i]!)).score;
  }
  return sum / draws.size;
}

const percentile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const signed = (x: number) => (x >= 0 ? '+' : '') + x.toFixed(2);

function main(): void {
  const run = process.argv[2] ?? 'runs/routing-study';
  const resamples = Number(process.argv[3] ?? 1000);
  const systems = load(run);
  const dense = systems.get('dense');
  if (dense === undefined) throw new Error(`no hypotheses in ${run}/dense/hyp; run the eval stage first`);
  const directions = [...dense.keys()].sort();
  const sizes = new Map(directions.map((d) => [d, dense.get(d)!.length]));
  const identity = new Map(directions.map((d) => [d, [...Array(sizes.get(d)!).keys()]]));
  const actual = new Map([...systems].map(([kind, s]) => [kind, meanBleu(s, identity)]));
  const samples = new Map([...systems.keys()].map((kind) => [kind, [] as number[]]));
  const rng = new Rng(12345);
  for (let r = 0; r < resamples; r++) {
    const draws = new Map(
      directions.map((d) => [d, Array.from({ length: sizes.get(d)! }, () => rng.int(0, sizes.get(d)!))]),
    );
    for (const [kind, s] of systems) samples.get(kind)!.push(meanBleu(s, draws));
  }
  const label = (kind: string) => KINDS.find((k) => k.kind === kind)!.label;
  console.log(
    `Paired bootstrap, ${resamples} resamples of the ${directions.length} dev subsets (${[...sizes.values()].join('/')} sentences), mean BLEU over directions:\n`,
  );
  console.log('| comparison | BLEU difference | 95% interval | p (difference ≤ 0) | directions where it is ahead |');
  console.log('|---|---|---|---|---|');
  for (const [a, b] of COMPARISONS) {
    if (!systems.has(a) || !systems.has(b)) continue;
    const diffs = samples
      .get(a)!
      .map((x, i) => x - samples.get(b)![i]!)
      .sort((x, y) => x - y);
    const ahead = directions.filter(
      (d) => bleuFromStats(systems.get(a)!.get(d)!).score > bleuFromStats(systems.get(b)!.get(d)!).score,
    ).length;
    const p = diffs.filter((x) => x <= 0).length / diffs.length;
    console.log(
      `| ${label(a)} − ${label(b)} | ${signed(actual.get(a)! - actual.get(b)!)} | ${signed(percentile(diffs, 0.025))} … ${signed(percentile(diffs, 0.975))} | ${p.toFixed(3)} | ${ahead}/${directions.length} |`,
    );
  }
}

main();
