// The engine benchmark's tables (Markdown): throughput per variant and batch, the decoder step
// against its analytic cost and the matMul ceiling, and the plain matMul ceilings themselves.
import type { ModelConfig } from '../../models/config.ts';
import { VARIANTS, type Variant, stepCost } from './costs.ts';
import type { BenchRow } from './index.ts';
import type { MatmulRow } from './measure.ts';

export const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '–');
export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
export const mparams = (n: number) => `${(n / 1e6).toFixed(2)}M`;

function table(cells: string[][]): string {
  const widths = cells[0].map((_, c) => Math.max(...cells.map((r) => r[c].length)));
  const line = (r: string[]) => '| ' + r.map((x, c) => x.padEnd(widths[c])).join(' | ') + ' |';
  return [line(cells[0]), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.slice(1).map(line)].join(
    '\n',
  );
}

export function formatRows(rows: BenchRow[]): string {
  const out: string[] = [];
  for (const config of [...new Set(rows.map((r) => r.config))]) {
    const rs = rows.filter((r) => r.config === config);
    const batches = [...new Set(rs.map((r) => r.batchSize))].sort((a, b) => a - b);
    const variants = VARIANTS.filter((v) => rs.some((r) => r.variant === v));
    const cell = (v: Variant, b: number) => rs.find((x) => x.variant === v && x.batchSize === b);
    out.push(
      `### ${config}: end-to-end target tokens/s, median of the timed runs (x = ratio to token); in brackets the fastest run's`,
    );
    out.push('');
    out.push(
      table([
        ['variant', 'decoder params', 'resident', ...batches.map((b) => `B=${b}`)],
        ...variants.map((v) => {
          const r0 = rs.find((r) => r.variant === v)!;
          return [
            v,
            mparams(r0.decoderParams),
            mib(r0.residentBytes),
            ...batches.map((b) => {
              const r = cell(v, b);
              if (r === undefined) return 'failed';
              const tok = cell('token', b);
              const ratio = (x: number, y: number | undefined) => (y === undefined ? '' : ` ${(x / y).toFixed(2)}x`);
              return `${fmt(r.tokensPerSecond)}${ratio(r.tokensPerSecond, tok?.tokensPerSecond)} [${fmt(r.bestTokensPerSecond)}${ratio(r.bestTokensPerSecond, tok?.bestTokensPerSecond)}]`;
            }),
          ];
        }),
      ]),
    );
    out.push('');
    out.push(
      `### ${config}: decoder alone (end-to-end minus one timed encode) and the profiled steps (median ms per kernel group)`,
    );
    out.push('');
    out.push(
      table([
        [
          'variant',
          'B',
          'encode s',
          'step ms',
          'decoder tok/s (x token)',
          'achieved GFLOP/s (2-D ceiling)',
          'experts/layer counted (uniform)',
          'profiled step: top kernel groups, ms',
        ],
        ...rs.map((r) => {
          const tok = cell('token', r.batchSize);
          const top = Object.entries(r.profile)
            .sort((x, y) => y[1] - x[1])
            .slice(0, 4)
            .map(([g, ms]) => `${g} ${ms.toFixed(1)}`)
            .join(', ');
          return [
            r.variant,
            `${r.batchSize}`,
            fmt(r.encodeSeconds, 2),
            fmt(r.stepSeconds * 1000),
            `${fmt(r.decodeTokensPerSecond)}${tok ? ` (${fmt(r.decodeTokensPerSecond / tok.decodeTokensPerSecond, 2)}x)` : ''}`,
            `${fmt(r.achievedGflops, 2)} (${fmt(r.matmulCeilingGflops, 1)})`,
            r.expertsPerLayer === 0 ? '-' : `${fmt(r.expertsPerLayerMeasured)} (${fmt(r.expertsPerLayer)})`,
            top,
          ];
        }),
      ]),
    );
    out.push('');
  }
  return out.join('\n');
}

export function formatCosts(
  cfg: ModelConfig,
  name: string,
  variants: readonly Variant[],
  batchSizes: number[],
): string {
  return [
    `### ${name}: analytic decoder-step costs (float32; weight MB read per step at each batch, experts per MoE layer in parentheses)`,
    '',
    table([
      [
        'variant',
        'GFLOP/token (step)',
        '+ start',
        'encoder GFLOP/token',
        ...batchSizes.map((b) => `B=${b} weight MB/step`),
        'cache KB/token',
      ],
      ...variants.map((v) => {
        const c1 = stepCost(cfg, v, 1);
        return [
          v,
          (c1.flopsPerToken / 1e9).toFixed(4),
          (c1.startFlopsPerToken / 1e9).toFixed(4),
          (c1.encoderFlopsPerToken / 1e9).toFixed(4),
          ...batchSizes.map((b) => {
            const c = stepCost(cfg, v, b);
            return `${fmt(c.weightBytesPerStep / 1e6)}${c.expertsPerLayer > 0 ? ` (${fmt(c.expertsPerLayer)})` : ''}`;
          }),
          fmt(c1.cacheBytesPerToken / 1e3),
        ];
      }),
    ]),
  ].join('\n');
}

export function formatMatmuls(ms: MatmulRow[]): string {
  return [
    `### ${ms[0]?.config}: plain 2-D matMul ceiling (XNNPACK, weights packed once)`,
    '',
    table([
      ['[m,k] x [k,n]', 'ms', 'GFLOP/s', 'weight GB/s'],
      ...ms.map((m) => [`[${m.m},${m.k}] x [${m.k},${m.n}]`, m.ms.toFixed(3), fmt(m.gflops, 2), fmt(m.weightGBps, 2)]),
    ]),
  ].join('\n');
}
