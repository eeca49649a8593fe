// A model's two ONNX graphs, built from its weights: the encoder (which also computes what the
// decoder needs once per source: cross-attention keys/values and per-sentence routes) and one
// decoder step (self-attention over its KV cache, cross-attention, FFN or MoE, output projection,
// greedy and beam scores). They mirror src/models/transformer.ts; docs/onnx.md lists the names.
// Imported models' variants (positions, embedding scale, target vocabulary, untied output, logits
// bias, suppressed ids) are branches in embed() and outputScores(); the layers' in layers.ts.
import { type Component, type ModelConfig, archOf, hasExperts, isMoeLayer, targetVocabSize } from '../models/config.ts';
import { positionTable } from '../models/layers.ts';
import {
  GraphContext,
  type GraphRoutes,
  attention,
  ffn,
  finalNorm,
  linear,
  maskedMean,
  mergeHeads,
  moeFFN,
  repeatRoutes,
  residual,
  splitHeads,
  splitKV,
  topKGating,
} from './layers.ts';
import { FLOAT, GraphBuilder, INT64 } from './proto.ts';

export type HostWeights = ReadonlyMap<string, { data: Float32Array; shape: number[] }>;

/** How MoE layer i of a component is routed in the graphs: by rows, once per sentence, or not at all. */
export function layerRouting(cfg: ModelConfig, c: Component, i: number): 'none' | 'token' | 'sentence' {
  if (!isMoeLayer(cfg, c, i) || !hasExperts(cfg, c)) return 'none';
  return cfg.routing[c] === 'token' ? 'token' : 'sentence';
}

/** Decoder layers whose routes are decided once per sentence (in the encoder graph) and fed to each step. */
export function sentenceRoutedDecoderLayers(cfg: ModelConfig): number[] {
  return Array.from({ length: cfg.decoderLayers }, (_, i) => i).filter(
    (i) => layerRouting(cfg, 'decoder', i) === 'sentence',
  );
}

/** Whether a component's gates read a task embedding, so its graph takes task ids. */
export function takesTask(cfg: ModelConfig, c: Component): boolean {
  return hasExperts(cfg, c) && (cfg.routing[c] === 'target' || cfg.routing[c] === 'pair');
}

// ids: int64 [...] -> the side's embeddings (scaled by sqrt(d) unless arch.scaleEmbedding is off) plus the positions' rows: [..., d]
function embed(c: GraphContext, ids: string, positions: string, side: 'source' | 'target'): string {
  const { g } = c;
  const table = side === 'target' && c.has('embed.target') ? 'embed.target' : 'embed';
  const rows = g.op('Gather', [c.w(table), ids], { axis: 0 });
  const tokens = c.arch.scaleEmbedding ? g.op('Mul', [rows, g.scalar(Math.sqrt(c.cfg.dModel))]) : rows;
  return g.op('Add', [tokens, g.op('Gather', [c.w('positionTable'), positions], { axis: 0 })]);
}

// The per-sentence routes of a gate: the task embedding's row (target, pair) or a summary (sentence).
function sentenceRoutes(
  c: GraphContext,
  comp: Component,
  layer: string,
  task: string | null,
  summary: () => string,
): GraphRoutes {
  const input = task !== null ? c.g.op('Gather', [c.w(`${comp}.taskEmbed`), task], { axis: 0 }) : summary();
  return topKGating(c, input, c.w(`${layer}.ffn.gate`));
}

// The weights plus "positionTable" [maxLength, d], position 0 first, as embeddings.ts builds it:
// rows offset.. of a learned table, or sinusoids from the offset on.
function withPositions(cfg: ModelConfig, weights: HostWeights): HostWeights {
  const { positions, positionOffset: offset } = archOf(cfg);
  const [n, d] = [cfg.maxLength, cfg.dModel];
  const learned = weights.get('embed.positions');
  if (positions === 'learned' && learned === undefined) throw new Error('missing tensor "embed.positions"');
  const data =
    positions === 'learned'
      ? learned!.data.subarray(offset * d, (offset + n) * d)
      : positionTable(n, d, positions, offset);
  const all = new Map(weights);
  all.set('positionTable', { data, shape: [n, d] });
  return all;
}

/**
 * Encoder graph. Inputs: ids int64 [B, S] (padded), srcBias [B, 1, 1, S] (0 / -1e9), valid [B, S]
 * (1 for a real token), encTask int64 [B] when the encoder's gates read tasks.
 * Output: memory [B, S, d].
 */
export function encoderGraph(cfg: ModelConfig, weights: HostWeights): Uint8Array {
  const g = new GraphBuilder('encoder');
  const c = new GraphContext(g, cfg, withPositions(cfg, weights));
  const ids = g.input('ids', INT64, ['batch', 'srcLen']);
  const srcBias = g.input('srcBias', FLOAT, ['batch', 1, 1, 'srcLen']);
  const valid = g.input('valid', FLOAT, ['batch', 'srcLen']);
  const encTask = takesTask(cfg, 'encoder') ? g.input('encTask', INT64, ['batch']) : null;
  const mask = g.op('Unsqueeze', [valid, g.ints([2])]); // [B, S, 1]
  const validRows = g.op('Reshape', [valid, g.ints([-1])]); // [B*S]
  const srcLen = g.op('Gather', [g.op('Shape', [ids]), g.ints([1])], { axis: 0 });
  const positions = g.op('Range', [zeroScalar(g), g.op('Squeeze', [srcLen]), oneScalar(g)]);
  let x = embed(c, ids, positions, 'source'); // [B, S, d]
  for (let i = 0; i < cfg.encoderLayers; i++) {
    const l = `encoder.layers.${i}`;
    x = residual(c, x, `${l}.selfAttn.ln`, (hh) => {
      const q = splitHeads(c, linear(c, hh, `${l}.selfAttn.wq`));
      const [k, v] = splitKV(c, linear(c, hh, `${l}.selfAttn.wkv`));
      return linear(c, mergeHeads(c, attention(c, q, splitHeads(c, k), splitHeads(c, v), srcBias)), `${l}.selfAttn.wo`);
    });
    x = residual(c, x, `${l}.ffn.ln`, (hh) => encoderFFN(c, i, hh, encTask, mask, validRows));
  }
  g.output(finalNorm(c, x, 'encoder.lnF'), 'memory', FLOAT, ['batch', 'srcLen', cfg.dModel]);
  return g.toBytes(`taskmoe encoder: ${JSON.stringify(cfg)}`);
}

/**
 * Decoder-start graph: what the decoder computes once per source. Inputs: memory [B, S, d] (the
 * encoder's output); valid [B, S] under sentence routing; decTask int64 [B] when the decoder's
 * gates read tasks.
 * Outputs: per decoder layer i crossK.i, crossV.i [B, H, S, dh]; per sentence-routed decoder
 * layer i routeExperts.i int64 [B, k], routeGates.i [B, k].
 */
export function decoderStartGraph(cfg: ModelConfig, weights: HostWeights): Uint8Array {
  const g = new GraphBuilder('decoder_start');
  const c = new GraphContext(g, cfg, weights);
  const { dModel: d, numHeads: h, moe } = cfg;
  const memory = g.input('memory', FLOAT, ['batch', 'srcLen', d]);
  const routed = sentenceRoutedDecoderLayers(cfg);
  // valid [B, S] is an input only where sentence routing averages the source over it.
  const valid =
    cfg.routing.decoder === 'sentence' && routed.length > 0 ? g.input('valid', FLOAT, ['batch', 'srcLen']) : '';
  const decTask = takesTask(cfg, 'decoder') ? g.input('decTask', INT64, ['batch']) : null;
  for (let i = 0; i < cfg.decoderLayers; i++) {
    const [k, v] = splitKV(c, linear(c, memory, `decoder.layers.${i}.crossAttn.wkv`));
    g.output(splitHeads(c, k), `crossK.${i}`, FLOAT, ['batch', h, 'srcLen', d / h]);
    g.output(splitHeads(c, v), `crossV.${i}`, FLOAT, ['batch', h, 'srcLen', d / h]);
  }
  // Sentence routing in the decoder gates on the source's mean encoder output (transformer.ts's start()).
  for (const i of routed) {
    const mask = () => g.op('Unsqueeze', [valid, g.ints([2])]);
    const r = sentenceRoutes(c, 'decoder', `decoder.layers.${i}`, decTask, () => maskedMean(c, memory, mask()));
    g.output(r.experts, `routeExperts.${i}`, INT64, ['batch', moe.topK]);
    g.output(r.gates, `routeGates.${i}`, FLOAT, ['batch', moe.topK]);
  }
  return g.toBytes(`taskmoe decoder start: ${JSON.stringify(cfg)}`);
}

function zeroScalar(g: GraphBuilder): string {
  return g.op('Squeeze', [g.ints([0])]);
}

function oneScalar(g: GraphBuilder): string {
  return g.op('Squeeze', [g.ints([1])]);
}

// The FFN block of encoder layer i: dense, or MoE routed per token or per sentence. hh: [B, S, d] -> [B, S, d]
function encoderFFN(
  c: GraphContext,
  i: number,
  hh: string,
  task: string | null,
  mask: string,
  validRows: string,
): string {
  const { g } = c;
  const l = `encoder.layers.${i}`;
  const routing = layerRouting(c.cfg, 'encoder', i);
  if (routing === 'none') return ffn(c, hh, `${l}.ffn`);
  const rows = g.op('Reshape', [hh, g.ints([-1, c.cfg.dModel])]); // [B*S, d]
  const routes =
    routing === 'token'
      ? topKGating(c, rows, c.w(`${l}.ffn.gate`))
      : repeatRoutes(
          c,
          sentenceRoutes(c, 'encoder', l, task, () => maskedMean(c, hh, mask)),
          mask,
        );
  return g.op('Reshape', [moeFFN(c, rows, routes, l, validRows), g.op('Shape', [hh])]);
}

/**
 * Decoder-step graph: one new token per row. Inputs: tokens, positions int64 [B]; selfBias
 * [B, 1, 1, C+1]; srcBias [B, 1, 1, S]; per layer i pastK.i, pastV.i [B, H, C, dh] and crossK.i,
 * crossV.i [B, H, S, dh]; per sentence-routed layer i routeExperts.i int64 [B, k], routeGates.i
 * [B, k]; topK int64 [1]. Outputs: logits, logProbs [B, V] (V: the target vocabulary); best int64
 * [B] (argmax), bestLogProb [B]; topLogProbs [B, topK], topTokens int64 [B, topK] (each row's best);
 * per layer presentK.i, presentV.i [B, H, C+1, dh] (the cache for the next step).
 */
export function decoderStepGraph(cfg: ModelConfig, weights: HostWeights): Uint8Array {
  const g = new GraphBuilder('decoder_step');
  const c = new GraphContext(g, cfg, withPositions(cfg, weights));
  const { dModel: d, numHeads: h, moe } = cfg;
  const dh = d / h;
  const tokens = g.input('tokens', INT64, ['batch']);
  const positions = g.input('positions', INT64, ['batch']);
  const selfBias = g.input('selfBias', FLOAT, ['batch', 1, 1, 'cacheLen+1']);
  const srcBias = g.input('srcBias', FLOAT, ['batch', 1, 1, 'srcLen']);
  const perToken = g.ints([-1, h, 1, dh]);
  const rowsOf = (t: string) => g.op('Reshape', [t, g.ints([-1, d])]); // [B, H, 1, dh] -> [B, d]
  let x = embed(c, tokens, positions, 'target'); // [B, d]
  for (let i = 0; i < cfg.decoderLayers; i++) {
    const l = `decoder.layers.${i}`;
    const pastK = g.input(`pastK.${i}`, FLOAT, ['batch', h, 'cacheLen', dh]);
    const pastV = g.input(`pastV.${i}`, FLOAT, ['batch', h, 'cacheLen', dh]);
    const crossK = g.input(`crossK.${i}`, FLOAT, ['batch', h, 'srcLen', dh]);
    const crossV = g.input(`crossV.${i}`, FLOAT, ['batch', h, 'srcLen', dh]);
    // self-attention over the cache plus the new position
    x = residual(c, x, `${l}.selfAttn.ln`, (hh) => {
      const q = g.op('Reshape', [linear(c, hh, `${l}.selfAttn.wq`), perToken]);
      const [k, v] = splitKV(c, linear(c, hh, `${l}.selfAttn.wkv`));
      const kAll = g.op('Concat', [pastK, g.op('Reshape', [k, perToken])], { axis: 2 });
      const vAll = g.op('Concat', [pastV, g.op('Reshape', [v, perToken])], { axis: 2 });
      g.output(kAll, `presentK.${i}`, FLOAT, ['batch', h, 'cacheLen+1', dh]);
      g.output(vAll, `presentV.${i}`, FLOAT, ['batch', h, 'cacheLen+1', dh]);
      return linear(c, rowsOf(attention(c, q, kAll, vAll, selfBias)), `${l}.selfAttn.wo`);
    });
    // cross-attention over the encoder output
    x = residual(c, x, `${l}.crossAttn.ln`, (hh) => {
      const qc = g.op('Reshape', [linear(c, hh, `${l}.crossAttn.wq`), perToken]);
      return linear(c, rowsOf(attention(c, qc, crossK, crossV, srcBias)), `${l}.crossAttn.wo`);
    });
    // feed-forward
    x = residual(c, x, `${l}.ffn.ln`, (hh) => {
      const routing = layerRouting(cfg, 'decoder', i);
      if (routing === 'none') return ffn(c, hh, `${l}.ffn`);
      const routes =
        routing === 'token'
          ? topKGating(c, hh, c.w(`${l}.ffn.gate`))
          : {
              experts: g.input(`routeExperts.${i}`, INT64, ['batch', moe.topK]),
              gates: g.input(`routeGates.${i}`, FLOAT, ['batch', moe.topK]),
            };
      return moeFFN(c, hh, routes, l, null);
    });
  }
  outputScores(c, finalNorm(c, x, 'decoder.lnF'));
  return g.toBytes(`taskmoe decoder step: ${JSON.stringify(cfg)}`);
}

// x: [B, d] -> the step's outputs: logits and logProbs [B, V] over the target vocabulary, and the
// greedy and beam scores, suppressed ids (Marian's pad) excluded as prompt.ts's suppressed() does.
function outputScores(c: GraphContext, x: string): void {
  const { g, cfg, arch } = c;
  const vocab = targetVocabSize(cfg);
  const bias = arch.logitsBias ? [c.w('output.bias')] : [];
  const table = c.has('embed.target') ? 'embed.target' : 'embed';
  // The tied projection reads the target embedding transposed; an untied one is stored [d, V].
  const logits = arch.tiedOutput
    ? g.op('Gemm', [x, c.w(table), ...bias], { transB: 1 })
    : g.op('Gemm', [x, c.w('output'), ...bias]);
  const logProbs = g.op('LogSoftmax', [logits], { axis: -1 });
  g.output(logits, 'logits', FLOAT, ['batch', vocab]);
  g.output(logProbs, 'logProbs', FLOAT, ['batch', vocab]);
  // greedy: the argmax of the allowed logits and its log-probability among them; beam: log-probabilities, then the mask
  let allowed = logits;
  let beamScores = logProbs;
  if (cfg.suppressIds?.length) {
    const mask = new Float32Array(vocab);
    for (const id of cfg.suppressIds) mask[id] = -1e9;
    g.weight('suppressMask', mask, [vocab]);
    allowed = g.op('Add', [logits, 'suppressMask']);
    beamScores = g.op('Add', [logProbs, 'suppressMask']);
  }
  g.output(g.op('ArgMax', [allowed], { axis: 1, keepdims: 0 }), 'best', INT64, ['batch']);
  const allowedLogProbs = allowed === logits ? logProbs : g.op('LogSoftmax', [allowed], { axis: -1 });
  g.output(g.op('ReduceMax', [allowedLogProbs], { axes: [1], keepdims: 0 }), 'bestLogProb', FLOAT, ['batch']);
  // Beam search's candidates: a sentence's best 2*beam continuations are among its rows' best 2*beam.
  const [topValues, topIndices] = g.ops('TopK', [beamScores, g.input('topK', INT64, [1])], 2, {
    axis: -1,
    largest: 1,
    sorted: 1,
  });
  g.output(topValues, 'topLogProbs', FLOAT, ['batch', 'topK']);
  g.output(topIndices, 'topTokens', INT64, ['batch', 'topK']);
}
