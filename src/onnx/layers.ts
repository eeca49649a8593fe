// The Transformer's layers as ONNX subgraphs, mirroring src/models/layers.ts, stack.ts and moe.ts
// op for op (same formulas, same order of the scale and the bias), so ONNX Runtime and TensorFlow.js
// agree. The architecture variants of imported models (config.arch: biases, activation, pre- or
// post-LN, LayerNorm epsilon) are branches here, as in stack.ts.
import { type Architecture, type ModelConfig, archOf, biasName } from '../models/config.ts';
import { FLOAT, type GraphBuilder } from './proto.ts';

/** A graph being built from a model's weights: `w(name)` adds a checkpoint tensor once and names it. */
export class GraphContext {
  private readonly added = new Set<string>();
  readonly arch: Architecture;

  constructor(
    readonly g: GraphBuilder,
    readonly cfg: ModelConfig,
    private readonly weights: ReadonlyMap<string, { data: Float32Array; shape: number[] }>,
  ) {
    this.arch = archOf(cfg);
  }

  has(name: string): boolean {
    return this.weights.has(name);
  }

  w(name: string): string {
    if (!this.added.has(name)) {
      const t = this.weights.get(name);
      if (t === undefined) throw new Error(`missing tensor "${name}"`);
      this.g.weight(name, t.data, t.shape);
      this.added.add(name);
    }
    return name;
  }

  get heads(): number {
    return this.cfg.numHeads;
  }

  get headDim(): number {
    return this.cfg.dModel / this.cfg.numHeads;
  }
}

// x: [..., d] -> [..., d]
export function layerNorm(c: GraphContext, x: string, prefix: string): string {
  return c.g.op('LayerNormalization', [x, c.w(`${prefix}.g`), c.w(`${prefix}.b`)], {
    axis: -1,
    epsilon: { float: c.arch.layerNormEps },
  });
}

// x: [..., in] -> x w + b: [..., out], `name` the weight ("….wq"); the bias where the model has one
export function linear(c: GraphContext, x: string, name: string): string {
  const y = c.g.op('MatMul', [x, c.w(name)]);
  return c.has(biasName(name)) ? c.g.op('Add', [y, c.w(biasName(name))]) : y;
}

// x -> relu, swish or exact (erf) GELU of x, as layers.ts's activate
function activate(c: GraphContext, x: string): string {
  const { g } = c;
  if (c.arch.activation === 'relu') return g.op('Relu', [x]);
  if (c.arch.activation === 'swish') return g.op('Mul', [x, g.op('Sigmoid', [x])]);
  return g.op('Mul', [
    g.op('Mul', [x, g.op('Add', [g.op('Erf', [g.op('Mul', [x, g.scalar(Math.SQRT1_2)])]), g.scalar(1)])]),
    g.scalar(0.5),
  ]);
}

// x: [..., d] -> act(x wi + bi) wo + bo: [..., d]; prefix "….ffn" or "….ffn.experts.e"
export function ffn(c: GraphContext, x: string, prefix: string): string {
  return linear(c, activate(c, linear(c, x, `${prefix}.wi`)), `${prefix}.wo`);
}

/** A residual block around f, as stack.ts: x + f(LN(x)) for pre-LN, LN(x + f(x)) for post-LN. x: [..., d] -> [..., d] */
export function residual(c: GraphContext, x: string, ln: string, f: (h: string) => string): string {
  if (c.arch.norm === 'post') return layerNorm(c, c.g.op('Add', [x, f(x)]), ln);
  return c.g.op('Add', [x, f(layerNorm(c, x, ln))]);
}

/** A stack's output: its final LN ("encoder.lnF") for pre-LN models; post-LN layers end normalised. */
export function finalNorm(c: GraphContext, x: string, ln: string): string {
  return c.arch.norm === 'pre' ? layerNorm(c, x, ln) : x;
}

// x: [B, T, H*dh] -> [B, H, T, dh]
export function splitHeads(c: GraphContext, x: string): string {
  const shaped = c.g.op('Reshape', [x, c.g.ints([0, 0, c.heads, c.headDim])]);
  return c.g.op('Transpose', [shaped], { perm: [0, 2, 1, 3] });
}

// x: [B, H, T, dh] -> [B, T, H*dh]
export function mergeHeads(c: GraphContext, x: string): string {
  const t = c.g.op('Transpose', [x], { perm: [0, 2, 1, 3] });
  return c.g.op('Reshape', [t, c.g.ints([0, 0, c.cfg.dModel])]);
}

// x: [N, 2d] -> [x[:, :d], x[:, d:]]
export function splitKV(c: GraphContext, kv: string): [string, string] {
  const d = c.cfg.dModel;
  const [k, v] = c.g.ops('Split', [kv, c.g.ints([d, d])], 2, { axis: -1 });
  return [k, v];
}

/**
 * Scaled dot-product attention, as layers.ts: softmax(q k^T / sqrt(dh) + bias) v.
 * q: [B, H, T, dh], k, v: [B, H, S, dh], bias: broadcastable to [B, H, T, S] -> [B, H, T, dh]
 */
export function attention(c: GraphContext, q: string, k: string, v: string, bias: string): string {
  const { g } = c;
  const kT = g.op('Transpose', [k], { perm: [0, 1, 3, 2] });
  const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, kT]), g.scalar(1 / Math.sqrt(c.headDim))]), bias]);
  return g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), v]);
}

/** Top-k routes: `experts` int64 [R, k] and renormalised `gates` [R, k], as moe.ts's topKGating. */
export interface GraphRoutes {
  experts: string;
  gates: string;
}

// x: [R, d] (tokens or sentences) -> the top-k experts of the gate `gateW`: [d, E]
export function topKGating(c: GraphContext, x: string, gateW: string): GraphRoutes {
  const { g } = c;
  const probs = g.op('Softmax', [g.op('MatMul', [x, gateW])], { axis: -1 });
  const [values, experts] = g.ops('TopK', [probs, g.ints([c.cfg.moe.topK])], 2, { axis: -1, largest: 1, sorted: 1 });
  const gates = g.op('Div', [values, g.op('ReduceSum', [values, g.ints([1])], { keepdims: 1 })]);
  return { experts, gates };
}

// per-sentence routes [B, k] -> per-row routes [B*T, k], each sentence's over its T rows; rowsLike: [B, T, 1]
export function repeatRoutes(c: GraphContext, r: GraphRoutes, rowsLike: string): GraphRoutes {
  const { g } = c;
  const shape = g.op('Shape', [rowsLike]);
  const rows = (t: string) =>
    g.op('Reshape', [g.op('Expand', [g.op('Unsqueeze', [t, g.ints([1])]), shape]), g.ints([-1, c.cfg.moe.topK])]);
  return { experts: rows(r.experts), gates: rows(r.gates) };
}

// h: [B, T, d], mask: [B, T, 1] -> mean over the rows where mask is 1: [B, d]
export function maskedMean(c: GraphContext, h: string, mask: string): string {
  const { g } = c;
  const sum = g.op('ReduceSum', [g.op('Mul', [h, mask]), g.ints([1])], { keepdims: 0 });
  return g.op('Div', [sum, g.op('ReduceSum', [mask, g.ints([1])], { keepdims: 0 })]);
}

/**
 * y[r] = sum over r's experts e of gate(r, e) * FFN_e(x[r]), as moe.ts's moeFFN: each expert
 * computes only the rows routed to it (NonZero, Gather, one MatMul pair, ScatterND add), so a
 * token-routed layer costs its top-k experts, not all of them. x: [N, d], valid: [N] 1/0 or null
 * (0: a padding row that no expert computes, left at zero) -> [N, d]
 */
export function moeFFN(c: GraphContext, x: string, r: GraphRoutes, layer: string, valid: string | null): string {
  const { g } = c;
  let out = g.op('Mul', [x, g.scalar(0)]);
  for (let e = 0; e < c.cfg.moe.numExperts; e++) {
    const chosen = g.op('Cast', [g.op('Equal', [r.experts, g.ints([e])])], { to: FLOAT }); // [N, k]
    let picked = g.op('ReduceMax', [chosen], { axes: [1], keepdims: 0 }); // [N]
    if (valid !== null) picked = g.op('Mul', [picked, valid]);
    const gate = g.op('ReduceSum', [g.op('Mul', [chosen, r.gates]), g.ints([1])], { keepdims: 0 }); // [N]
    const rows = g.op('Reshape', [g.op('NonZero', [picked]), g.ints([-1])]); // [M]
    const y = ffn(c, g.op('Gather', [x, rows], { axis: 0 }), `${layer}.ffn.experts.${e}`);
    const weighted = g.op('Mul', [y, g.op('Unsqueeze', [g.op('Gather', [gate, rows], { axis: 0 }), g.ints([1])])]);
    out = g.op('ScatterND', [out, g.op('Unsqueeze', [rows, g.ints([1])]), weighted], { reduction: 'add' });
  }
  return out;
}
