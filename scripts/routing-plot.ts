// The routing study's report (docs/routing-study.md): reads what scripts/routing-study.sh left in
// runs/routing-study/ and prints the study's tables as markdown, and draws docs/routing-study.svg
// (plain SVG written by hand: no plotting dependency).
// Run: node --import tsx scripts/routing-plot.ts [RUN_DIR] [SVG_FILE] [LAST_STEP (default: the configs' stopAt or steps)]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KINDS, type Kind } from './routing-kinds.ts';

interface Direction {
  direction: string;
  bleu: number;
  chrf: number;
  sentences: number;
}
interface Params {
  total: number;
  encoder: number;
  decoder: number;
  embeddings: number;
}
interface Inspect {
  params: Params;
  bytes: number;
  subnetworks: { pairs: string[]; params: Params }[];
}
interface BenchCell {
  config: string;
  variant: string;
  batchSize: number;
  tokensPerSecond: number;
  engine?: string;
}

interface Result {
  k: Kind;
  directions: Direction[];
  bleu: number;
  chrf: number;
  inspect: Inspect;
  extracted?: Inspect;
  /** /usr/bin/time's figures for the training (data loading included). */
  wallSeconds?: number;
  cpuSeconds?: number;
  /** Mean training cross-entropy over the logged steps of the last quarter (every model saw the same batches). */
  lateCe?: number;
  /** Training cross-entropy at each logged step of that last quarter. */
  lateSteps: Map<number, number>;
}

const readJson = <T>(file: string): T | undefined =>
  fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as T) : undefined;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const f1 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(1));
const millions = (n: number) => `${(n / 1e6).toFixed(2)}M`;

/** The step a routing's training ends at: train.stopAt where set, else train.steps (models/routing-study/KIND.json). */
function trainingBudget(kind: string): number {
  if (process.argv[4] !== undefined) return Number(process.argv[4]);
  const train = readJson<{ train: { steps: number; stopAt?: number } }>(
    path.join('models/routing-study', `${kind}.json`),
  )?.train;
  return train?.stopAt || train?.steps || Infinity;
}

function load(run: string): Result[] {
  const out: Result[] = [];
  for (const k of KINDS) {
    const dir = path.join(run, k.kind);
    const evaluation = readJson<{ directions: Direction[]; average: { bleu: number; chrf: number } }>(
      path.join(dir, 'eval.json'),
    );
    const inspect = readJson<Inspect>(path.join(dir, 'inspect.json'));
    if (evaluation === undefined || inspect === undefined) {
      console.error(`routing-plot: ${k.kind}: no eval.json or inspect.json in ${dir}; left out`);
      continue;
    }
    const log = fs.existsSync(`${dir}.log`) ? fs.readFileSync(`${dir}.log`, 'utf8') : '';
    // One line per training session (a resumed run has several): sum them.
    const times = [...log.matchAll(/time: ([\d.]+) s wall, ([\d.]+) s user, ([\d.]+) s sys/g)];
    const ce = new Map(
      [...log.matchAll(/^step (\d+)\/\d+ loss \S+ \(ce ([\d.]+)/gm)].map((m) => [Number(m[1]), { ce: Number(m[2]) }]),
    );
    const budget = trainingBudget(k.kind);
    const lateSteps = new Map(
      [...ce.entries()].filter(([step]) => step > 0.75 * budget && step <= budget).map(([step, v]) => [step, v.ce]),
    );
    const late = [...lateSteps.values()];
    out.push({
      k,
      directions: evaluation.directions,
      bleu: evaluation.average.bleu,
      chrf: evaluation.average.chrf,
      inspect,
      extracted: readJson<Inspect>(path.join(dir, 'extract-inspect.json')),
      wallSeconds: times.length > 0 ? times.reduce((a, m) => a + Number(m[1]), 0) : undefined,
      cpuSeconds: times.length > 0 ? times.reduce((a, m) => a + Number(m[2]) + Number(m[3]), 0) : undefined,
      lateCe: late.length > 0 ? mean(late) : undefined,
      lateSteps,
    });
  }
  return out;
}

function benchCells(run: string): { wasm: BenchCell[]; onnx: BenchCell[] } {
  const wasm = readJson<{ rows: BenchCell[] }>(path.join(run, 'bench-engine-wasm.json'))?.rows ?? [];
  const onnx = (readJson<BenchCell[]>(path.join(run, 'bench-engine-onnx.json')) ?? []).filter(
    (r) => r.engine !== 'wasm',
  );
  return { wasm, onnx };
}

function throughput(cells: BenchCell[], k: Kind, batch: number): number | undefined {
  return cells.find((c) => c.config === k.bench[0] && c.variant === k.bench[1] && c.batchSize === batch)
    ?.tokensPerSecond;
}

/** Parameters that serve en-de: the en-de sub-network where the routing has one, else the whole model. */
function perPair(r: Result): number {
  return r.inspect.subnetworks.find((s) => s.pairs.includes('en-de'))?.params.total ?? r.inspect.params.total;
}

function tables(results: Result[], bench: { wasm: BenchCell[]; onnx: BenchCell[] }): string {
  const lines: string[] = [];
  const dense = results.find((r) => r.k.kind === 'dense');
  const xxEn = (r: Result) => mean(r.directions.filter((d) => d.direction.endsWith('-en')).map((d) => d.bleu));
  const enXx = (r: Result) => mean(r.directions.filter((d) => d.direction.startsWith('en-')).map((d) => d.bleu));
  lines.push(
    '| routing (enc/dec) | train CE, last quarter | CE − dense, step by step | dev BLEU | dev chrF | BLEU xx→en | BLEU en→xx | BLEU − dense | paper: BLEU − dense |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    // Every model saw the same batches, so the difference at one step is a paired comparison.
    const steps = [...r.lateSteps.keys()].filter((st) => dense?.lateSteps.has(st)).sort((a, b) => a - b);
    const paired = steps
      .map((st) => {
        const d = r.lateSteps.get(st)! - dense!.lateSteps.get(st)!;
        return `${d >= 0 ? '+' : ''}${d.toFixed(3)}`;
      })
      .join(' ');
    const paper =
      r.k.kind === 'dense' ? '0' : r.k.paperBleu !== undefined ? `+${(r.k.paperBleu - 20.0).toFixed(1)}` : 'n/a';
    const gain = dense ? `${r.bleu >= dense.bleu ? '+' : ''}${(r.bleu - dense.bleu).toFixed(2)}` : '–';
    lines.push(
      `| ${r.k.label} | ${r.lateCe?.toFixed(3) ?? '–'} | ${paired} | ${r.bleu.toFixed(2)} | ${r.chrf.toFixed(2)} | ${xxEn(r).toFixed(2)} | ${enXx(r).toFixed(2)} | ${gain} | ${paper} |`,
    );
  }
  lines.push(
    '',
    '| routing | parameters | serving en-de | extracted decoder | wasm tok/s B=1 | B=32 | ONNX tok/s B=1 | B=32 | training wall / CPU |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const ex = r.extracted;
    const whole = r.inspect.params.decoder;
    const exCell =
      ex === undefined || ex.params.decoder === whole
        ? `${millions(whole)}: nothing to cut (serves every pair)`
        : `${millions(ex.params.decoder)} (${((ex.params.decoder * 4) / 2 ** 20).toFixed(1)} MiB float32) of ${millions(whole)}: ${(whole / ex.params.decoder).toFixed(2)}x smaller`;
    const time =
      r.wallSeconds !== undefined ? `${(r.wallSeconds / 60).toFixed(1)} / ${(r.cpuSeconds! / 60).toFixed(1)} min` : '–';
    lines.push(
      `| ${r.k.label} | ${millions(r.inspect.params.total)} | ${millions(perPair(r))} | ${exCell} | ` +
        `${f1(throughput(bench.wasm, r.k, 1))} | ${f1(throughput(bench.wasm, r.k, 32))} | ${f1(throughput(bench.onnx, r.k, 1))} | ${f1(throughput(bench.onnx, r.k, 32))} | ${time} |`,
    );
  }
  const directions = results[0]?.directions.map((d) => d.direction) ?? [];
  lines.push('', `| routing | ${directions.join(' | ')} |`, `|---|${directions.map(() => '---').join('|')}|`);
  for (const r of results) {
    const cell = (dir: string) => {
      const d = r.directions.find((x) => x.direction === dir);
      return d ? `${d.bleu.toFixed(1)} / ${d.chrf.toFixed(1)}` : '–';
    };
    lines.push(`| ${r.k.label} | ${directions.map(cell).join(' | ')} |`);
  }
  return lines.join('\n');
}

// ---- the SVG: four panels side by side ----

const W = 300;
const H = 260;
const PAD = { left: 44, right: 12, top: 30, bottom: 58 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
const text = (x: number, y: number, s: string, attrs = '') =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
const rect = (x: number, y: number, w: number, h: number, fill: string) =>
  `<rect x="${x.toFixed(1)}" y="${Math.min(y, y + h).toFixed(1)}" width="${w.toFixed(1)}" height="${Math.abs(h).toFixed(1)}" fill="${fill}"/>`;
const circle = (x: number, y: number, r: number, fill: string) =>
  `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${r}" fill="${fill}" stroke="#222" stroke-width="0.5"/>`;

/** A panel's frame: title, y axis with ticks over [lo, hi]; returns the value -> y mapping. */
function frame(
  parts: string[],
  x0: number,
  title: string,
  yLabel: string,
  lo: number,
  hi: number,
): (v: number) => number {
  const y = (v: number) => H - PAD.bottom - ((v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);
  parts.push(text(x0 + W / 2, 16, title, 'text-anchor="middle" font-weight="bold"'));
  parts.push(
    `<line x1="${x0 + PAD.left}" y1="${PAD.top}" x2="${x0 + PAD.left}" y2="${H - PAD.bottom}" stroke="#222"/>`,
  );
  const step = niceStep((hi - lo) / 5);
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) {
    parts.push(
      `<line x1="${x0 + PAD.left}" y1="${y(v).toFixed(1)}" x2="${x0 + W - PAD.right}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`,
    );
    parts.push(text(x0 + PAD.left - 4, y(v) + 4, Number(v.toFixed(3)).toString(), 'text-anchor="end"'));
  }
  parts.push(
    text(
      x0 + 12,
      (PAD.top + H - PAD.bottom) / 2,
      yLabel,
      `text-anchor="middle" transform="rotate(-90 ${x0 + 12} ${(PAD.top + H - PAD.bottom) / 2})"`,
    ),
  );
  return y;
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

function xLabels(parts: string[], x0: number, labels: string[]): (i: number) => number {
  const slot = (W - PAD.left - PAD.right) / labels.length;
  labels.forEach((l, i) =>
    parts.push(
      text(
        x0 + PAD.left + slot * (i + 0.5),
        H - PAD.bottom + 12,
        l,
        `text-anchor="end" transform="rotate(-35 ${x0 + PAD.left + slot * (i + 0.5)} ${H - PAD.bottom + 12})"`,
      ),
    ),
  );
  return (i) => x0 + PAD.left + slot * i;
}

function svg(results: Result[], bench: { wasm: BenchCell[] }): string {
  const parts: string[] = [];
  const slot = (W - PAD.left - PAD.right) / Math.max(1, results.length);
  // 1: average dev BLEU per routing, each direction a dot.
  const all = results.flatMap((r) => r.directions.map((d) => d.bleu));
  const y1 = frame(parts, 0, 'Dev BLEU (this study)', 'BLEU', 0, Math.max(1, ...all) * 1.1);
  const x1 = xLabels(
    parts,
    0,
    results.map((r) => r.k.label),
  );
  results.forEach((r, i) => {
    parts.push(rect(x1(i) + slot * 0.2, y1(0), slot * 0.6, y1(r.bleu) - y1(0), r.k.color));
    r.directions.forEach((d, j) =>
      parts.push(
        circle(x1(i) + slot * (0.25 + (0.5 * j) / Math.max(1, r.directions.length - 1)), y1(d.bleu), 2, '#fff'),
      ),
    );
  });
  // 2: BLEU over dense, this study against the paper's WMT figures.
  const dense = results.find((r) => r.k.kind === 'dense')?.bleu ?? 0;
  const gains = results.map((r) => ({
    ours: r.bleu - dense,
    paper: r.k.paperBleu !== undefined ? r.k.paperBleu - 20.0 : undefined,
  }));
  const vals = gains.flatMap((g) => [g.ours, g.paper ?? 0]);
  const y2 = frame(
    parts,
    W,
    'BLEU over dense',
    'BLEU − dense',
    Math.min(0, ...vals) - 0.3,
    Math.max(0.5, ...vals) + 0.3,
  );
  const x2 = xLabels(
    parts,
    W,
    results.map((r) => r.k.label),
  );
  gains.forEach((g, i) => {
    parts.push(rect(x2(i) + slot * 0.12, y2(0), slot * 0.36, y2(g.ours) - y2(0), results[i].k.color));
    if (g.paper !== undefined)
      parts.push(rect(x2(i) + slot * 0.52, y2(0), slot * 0.36, y2(g.paper) - y2(0), '#bbbbbb'));
  });
  parts.push(
    `<line x1="${W + PAD.left}" y1="${y2(0).toFixed(1)}" x2="${2 * W - PAD.right}" y2="${y2(0).toFixed(1)}" stroke="#222"/>`,
  );
  parts.push(
    rect(W + PAD.left + 6, PAD.top + 2, 8, 8, '#1b9e77'),
    text(W + PAD.left + 18, PAD.top + 10, 'this study (colour)'),
  );
  parts.push(
    rect(W + PAD.left + 6, PAD.top + 14, 8, 8, '#bbbbbb'),
    text(W + PAD.left + 18, PAD.top + 22, 'paper, WMT 30 directions'),
  );
  // 3: quality against serving throughput (wasm, batch 32), as the paper plots BLEU against throughput.
  const pts = results.map((r) => ({ r, tps: throughput(bench.wasm, r.k, 32) })).filter((p) => p.tps !== undefined) as {
    r: Result;
    tps: number;
  }[];
  const maxT = Math.max(1, ...pts.map((p) => p.tps)) * 1.15;
  const y3 = frame(
    parts,
    2 * W,
    'BLEU vs decoding speed',
    'BLEU',
    Math.min(...results.map((r) => r.bleu)) - 0.5,
    Math.max(...results.map((r) => r.bleu)) + 0.5,
  );
  const x3 = (t: number) => 2 * W + PAD.left + (t / maxT) * (W - PAD.left - PAD.right);
  parts.push(
    `<line x1="${2 * W + PAD.left}" y1="${H - PAD.bottom}" x2="${3 * W - PAD.right}" y2="${H - PAD.bottom}" stroke="#222"/>`,
  );
  for (let t = 0; t <= maxT; t += niceStep(maxT / 4))
    parts.push(text(x3(t), H - PAD.bottom + 14, String(Math.round(t)), 'text-anchor="middle"'));
  parts.push(
    text(2 * W + W / 2, H - PAD.bottom + 30, 'tokens/s, tfjs-wasm, batch 32, served shape', 'text-anchor="middle"'),
  );
  // Routings served by the same graph share a speed: their labels go in a column left of the points.
  pts.forEach((p, i) => {
    const same = pts.filter((q) => q.tps === p.tps);
    const y =
      same.length > 1
        ? y3(Math.max(...same.map((q) => q.r.bleu))) - 10 + 12 * same.indexOf(p)
        : y3(p.r.bleu) + (i % 2 === 0 ? -8 : 14);
    parts.push(circle(x3(p.tps), y3(p.r.bleu), 5, p.r.k.color));
    parts.push(text(x3(p.tps) - 9, y, p.r.k.label, `text-anchor="end" font-size="10" fill="${p.r.k.color}"`));
  });
  // 4: training cross-entropy over dense on the same batches (the last quarter's mean): below 0 fits better.
  const ceGain = results.map((r) => (r.lateCe ?? NaN) - (results.find((x) => x.k.kind === 'dense')?.lateCe ?? NaN));
  const finite = ceGain.filter(Number.isFinite);
  const y4 = frame(
    parts,
    3 * W,
    'Training CE − dense (same batches)',
    'nats',
    Math.min(0, ...finite) - 0.02,
    Math.max(0, ...finite) + 0.02,
  );
  const x4 = xLabels(
    parts,
    3 * W,
    results.map((r) => r.k.label),
  );
  ceGain.forEach((g, i) => {
    if (Number.isFinite(g)) parts.push(rect(x4(i) + slot * 0.2, y4(0), slot * 0.6, y4(g) - y4(0), results[i].k.color));
  });
  parts.push(
    `<line x1="${3 * W + PAD.left}" y1="${y4(0).toFixed(1)}" x2="${4 * W - PAD.right}" y2="${y4(0).toFixed(1)}" stroke="#222"/>`,
  );
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${4 * W}" height="${H}" viewBox="0 0 ${4 * W} ${H}" font-family="sans-serif" font-size="11">\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n${parts.join('\n')}\n</svg>\n`
  );
}

function main(): void {
  const run = process.argv[2] ?? 'runs/routing-study';
  const out = process.argv[3] ?? 'docs/routing-study.svg';
  const results = load(run);
  if (results.length === 0) throw new Error(`no evaluated routing in ${run}; run scripts/routing-study.sh first`);
  const bench = benchCells(run);
  console.log(tables(results, bench));
  fs.writeFileSync(out, svg(results, bench));
  console.error(`wrote ${out}`);
}

main();
