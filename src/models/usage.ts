// Expert extraction by measured routing. A token-routed MoE layer cannot be cut by task exactly, but
// the experts one language pair uses can be measured: run a calibration set's sources through the
// sub-network, add up each expert's gate mass (its renormalised top-k gate value over every token),
// and keep the K most used per MoE layer, the gate's columns restricted to them.
import * as tf from '@tensorflow/tfjs';
import type { TensorSource } from './checkpoint.ts';
import { type Component, type ModelConfig, COMPONENTS, hasExperts, isMoeLayer, numLayers } from './config.ts';
import { decode } from './decoding.ts';
import type { Weights } from './layers.ts';
import { Seq2Seq } from './model.ts';
import type { Direction, GateRecord } from './transformer.ts';

/** Per token-routed component and MoE layer, each expert's summed gate mass. */
export type Usage = Map<string, Float64Array>;

export const usageKey = (c: Component, layer: number): string => `${c}.layers.${layer}`;

/** The components whose experts are kept by usage: token-routed ones that still hold experts. */
export function usageComponents(cfg: ModelConfig): Component[] {
  for (const c of COMPONENTS) {
    if (hasExperts(cfg, c) && cfg.routing[c] === 'sentence') throw new Error(`the ${c} is sentence-routed; --by-usage cuts token-routed experts only`);
  }
  return COMPONENTS.filter((c) => hasExperts(cfg, c) && cfg.routing[c] === 'token');
}

// adds each row's renormalised top-k gate values to its experts' mass (padding rows, top1 = -1, skipped)
function addMass(usage: Usage, g: GateRecord, k: number): void {
  const key = usageKey(g.component, g.layer);
  const [rows, experts] = g.probs.shape;
  const mass = usage.get(key) ?? new Float64Array(experts);
  usage.set(key, mass);
  const p = g.probs.dataSync();
  for (let r = 0; r < rows; r++) {
    if (g.top1[r] < 0) continue;
    const row = Array.from(p.subarray(r * experts, (r + 1) * experts), (v, e) => [v, e]).sort((a, b) => b[0] - a[0]).slice(0, k);
    const sum = row.reduce((s, [v]) => s + v, 0);
    for (const [v, e] of row) mass[e] += v / sum;
  }
}

/**
 * Gate mass per expert over the calibration sources (token ids, as Translator.encode makes them):
 * the encoder on the sources, a token-routed decoder on its own greedy translations (teacher-forced).
 */
export function measureUsage(model: Seq2Seq, sources: number[][], dir: Direction, ids: { bosId: number; eosId: number }, batchSize = 32): Usage {
  const usage: Usage = new Map();
  const k = model.config.moe.topK;
  const collect = (g: GateRecord) => addMass(usage, g, k);
  const components = usageComponents(model.config);
  for (let start = 0; start < sources.length; start += batchSize) {
    const batch = sources.slice(start, start + batchSize);
    const dirs = batch.map(() => dir);
    const enc = model.encoder.encode(model.embeddings, batch, dirs, components.includes('encoder') ? collect : undefined);
    if (components.includes('decoder')) {
      const outputs = decode(model, batch, dirs, { ...ids, beamSize: 1 }).map((h) => h[0].tokens);
      outputs.forEach((out, i) => {
        const one = { ...enc, out: tf.tidy(() => enc.out.reshape([batch.length, enc.srcLen, -1]).slice([i, 0, 0], [1, -1, -1]).reshape([enc.srcLen, -1]) as tf.Tensor2D), batch: 1, lengths: [enc.lengths[i]] };
        const state = model.decoder.start(one, [dir]);
        tf.dispose([one.out, model.decoder.forward(model.embeddings, state, [[ids.bosId, ...out]], collect)]);
        model.decoder.disposeState(state);
      });
    }
    enc.out.dispose();
  }
  return usage;
}

/** Per MoE layer, the K most used experts, most used first. */
export function keptExperts(usage: Usage, keep: number): Map<string, number[]> {
  return new Map([...usage].map(([key, mass]) => {
    if (keep > mass.length) throw new Error(`--keep ${keep} exceeds the ${mass.length} experts of ${key}`);
    return [key, Array.from(mass, (m, e) => [m, e]).sort((a, b) => b[0] - a[0]).slice(0, keep).map(([, e]) => e)];
  }));
}

/**
 * The sub-network's config and weights with only the kept experts of each token-routed MoE layer:
 * experts renumbered in kept order, gate columns [d, E] -> [d, K]. Takes ownership of `model`'s weights.
 */
export function keepExperts(model: Seq2Seq, kept: Map<string, number[]>, keep: number): { config: ModelConfig; weights: Weights } {
  const cfg = model.config;
  if (keep < cfg.moe.topK) throw new Error(`--keep ${keep} is below the router's top-${cfg.moe.topK}`);
  const weights = model.weights;
  const out: Weights = new Map();
  const moved = new Set<string>();
  for (const c of usageComponents(cfg)) {
    for (let i = 0; i < numLayers(cfg, c); i++) {
      if (!isMoeLayer(cfg, c, i)) continue;
      const l = usageKey(c, i);
      const experts = kept.get(l);
      if (experts === undefined) throw new Error(`no usage measured for ${l} (empty calibration set?)`);
      const gate = weights.get(`${l}.ffn.gate`)!;
      out.set(`${l}.ffn.gate`, tf.tidy(() => tf.gather(gate, tf.tensor1d(experts, 'int32'), 1)));
      moved.add(`${l}.ffn.gate`);
      experts.forEach((e, j) => {
        for (const w of ['wi', 'wo', 'bi', 'bo']) {
          const t = weights.get(`${l}.ffn.experts.${e}.${w}`);
          if (t === undefined) continue;
          out.set(`${l}.ffn.experts.${j}.${w}`, t.clone());
        }
      });
      for (const n of weights.keys()) if (n.startsWith(`${l}.ffn.experts.`)) moved.add(n);
    }
  }
  for (const [n, t] of weights) if (!moved.has(n)) out.set(n, t.clone());
  return { config: { ...cfg, moe: { ...cfg.moe, numExperts: keep } }, weights: out };
}

/** Loads the sub-network serving `dir` (task-routed parts extracted), for usage measurement. */
export async function loadForUsage(reader: TensorSource, dir: Direction): Promise<Seq2Seq> {
  const model = await Seq2Seq.loadSubnetwork(reader, dir);
  if (usageComponents(model.config).length === 0) {
    model.dispose();
    throw new Error('the model has no token-routed experts; --by-usage applies to token-routed MoE models');
  }
  return model;
}
