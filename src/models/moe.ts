// Mixture-of-Experts FFN: top-k gating and a sparse dispatch that computes each expert only on
// the rows routed to it (gather, one 2-D matMul pair per expert, weighted combine).
import * as tf from '@tensorflow/tfjs';
import { type Activation, type FfnWeights, ffn } from './layers.ts';
import type { Component } from './config.ts';
import { gatherRows, takeRows } from './ops.ts';

/** Where each row goes: `experts[r * k + s]` is row r's s-th expert (-1: the row is padding, skip it). */
export interface Routes {
  k: number;
  experts: Int32Array;
  /** [rows, k], the renormalised gate value of each chosen expert. */
  gates: tf.Tensor2D;
}

/**
 * GShard top-k gating: softmax over experts, keep the k largest, renormalise them to sum to 1.
 * logits: [N, E] -> routes for N rows, plus the full softmax (for the load-balancing loss).
 */
export function topKGating(logits: tf.Tensor2D, k: number): { routes: Routes; probs: tf.Tensor2D } {
  const probs = tf.softmax(logits);
  const [n, numExperts] = probs.shape;
  const { values, indices } = tf.topk(probs, k);
  const experts = Int32Array.from(indices.dataSync() as Int32Array);
  tf.dispose([values, indices]);
  // TopK has no gradient, so the chosen probabilities are gathered again from the softmax.
  const flatIndex = experts.map((e, i) => Math.floor(i / k) * numExperts + e);
  const gates = tf.tidy(() => {
    const values = gatherRows(probs.reshape([n * numExperts, 1]), tf.tensor1d(flatIndex, 'int32')).reshape([n, k]);
    return values.div(values.sum(-1, true)) as tf.Tensor2D;
  });
  return { routes: { k, experts, gates }, probs };
}

/** Per-sentence routes [B] -> per-row routes [B*T], each sentence's choice repeated over its T rows. */
export function repeatRoutes(r: Routes, rowsPerSentence: number): Routes {
  if (rowsPerSentence === 1) return { k: r.k, experts: r.experts, gates: r.gates.clone() };
  const sentences = r.gates.shape[0];
  const experts = new Int32Array(sentences * rowsPerSentence * r.k);
  for (let b = 0; b < sentences; b++) {
    const choice = r.experts.subarray(b * r.k, (b + 1) * r.k);
    for (let t = 0; t < rowsPerSentence; t++) experts.set(choice, (b * rowsPerSentence + t) * r.k);
  }
  const gates = tf.tidy(() =>
    r.gates.expandDims(1).tile([1, rowsPerSentence, 1]).reshape([sentences * rowsPerSentence, r.k]) as tf.Tensor2D,
  );
  return { k: r.k, experts, gates };
}

/** The routes of the given rows, in that order. */
export function selectRoutes(r: Routes, rows: readonly number[]): Routes {
  const experts = new Int32Array(rows.length * r.k);
  rows.forEach((row, i) => experts.set(r.experts.subarray(row * r.k, (row + 1) * r.k), i * r.k));
  return { k: r.k, experts, gates: takeRows(r.gates, rows) };
}

/** The routes of a's rows then b's; the caller still owns a and b. */
export function concatRoutes(a: Routes, b: Routes): Routes {
  const experts = new Int32Array(a.experts.length + b.experts.length);
  experts.set(a.experts);
  experts.set(b.experts, a.experts.length);
  return { k: a.k, experts, gates: tf.concat([a.gates, b.gates]) };
}

/** Marks padding rows so that no expert computes them. rowValid: one flag per row. */
export function dropRows(r: Routes, rowValid: boolean[]): Routes {
  const experts = Int32Array.from(r.experts);
  rowValid.forEach((valid, row) => {
    if (!valid) experts.fill(-1, row * r.k, (row + 1) * r.k);
  });
  return { ...r, experts };
}

export type ExpertWeights = FfnWeights;

/**
 * y[r] = sum_s gates[r, s] * FFN_{experts[r, s]}(x[r]).
 * x: [N, d] -> [N, d]. Each expert sees only its rows; a row skipped by every expert gets zeros.
 */
export function moeFFN(x: tf.Tensor2D, routes: Routes, experts: ExpertWeights[], act: Activation = 'relu'): tf.Tensor2D {
  const [n, d] = x.shape;
  const { k } = routes;
  const rowsOf: number[][] = experts.map(() => []);
  const slotsOf: number[][] = experts.map(() => []);
  for (let i = 0; i < n * k; i++) {
    const e = routes.experts[i];
    if (e < 0) continue;
    rowsOf[e].push(Math.floor(i / k));
    slotsOf[e].push(i);
  }
  return tf.tidy(() => {
    const outputs: tf.Tensor2D[] = [];
    // Where each (row, slot) finds its expert's output in the concatenation; unused slots read the zero row.
    const position = new Int32Array(n * k).fill(-1);
    let offset = 0;
    experts.forEach((expert, e) => {
      const rows = rowsOf[e];
      if (rows.length === 0) return;
      const takesAllRowsInOrder = rows.length === n && rows.every((r, j) => r === j);
      const xe = takesAllRowsInOrder ? x : gatherRows(x, tf.tensor1d(rows, 'int32'));
      outputs.push(ffn(xe, expert, act));
      slotsOf[e].forEach((slot, j) => (position[slot] = offset + j));
      offset += rows.length;
    });
    outputs.push(tf.zeros([1, d]));
    position.forEach((p, i) => {
      if (p < 0) position[i] = offset;
    });
    const all = outputs.length === 1 ? outputs[0] : tf.concat(outputs, 0);
    const perSlot = gatherRows(all, tf.tensor1d(position, 'int32')).reshape([n, k, d]);
    return perSlot.mul(routes.gates.expandDims(2)).sum(1) as tf.Tensor2D;
  });
}

/** Frees the gate tensor of routes built outside a tidy. */
export function disposeRoutes(r: Routes | undefined): void {
  r?.gates.dispose();
}

/**
 * What the gate of one MoE layer decided, handed to a collector during training (for the
 * load-balancing loss) while `probs` is alive: the full softmax [rows, E] and each row's top-1
 * expert, -1 for a padding row. Rows are tokens under token routing, sentences otherwise.
 */
export interface GateRecord {
  component: Component;
  layer: number;
  probs: tf.Tensor2D;
  top1: Int32Array;
}

export type GateCollector = (gate: GateRecord) => void;

// routes over rows -> each row's first choice (-1 where the row is skipped)
export function firstChoices(r: Routes): Int32Array {
  return Int32Array.from({ length: r.experts.length / r.k }, (_, row) => r.experts[row * r.k]);
}
