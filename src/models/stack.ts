// What the encoder and the decoder share: the tied embeddings, and the Stack of layers with the
// routing of its MoE layers (per token, or per sentence by its task).
import * as tf from '@tensorflow/tfjs';
import { type Component, type ModelConfig, hasExperts, isMoeLayer, numLayers, taskKey, taskList } from './config.ts';
import { type Weights, linear, ffn, sinusoidalPositions, weight } from './layers.ts';
import { type ExpertWeights, type Routes, dropRows, moeFFN, repeatRoutes, topKGating } from './moe.ts';
import { gatherRows, hostRows, rowsCopyOnHost, takeRows } from './ops.ts';

/** Bytes held by a set of tensors. */
export function tensorBytes(tensors: Iterable<tf.Tensor>): number {
  let bytes = 0;
  for (const t of tensors) bytes += t.size * (t.dtype === 'int32' || t.dtype === 'float32' ? 4 : 1);
  return bytes;
}

export function disposeAll(w: Weights): void {
  for (const t of w.values()) t.dispose();
  w.clear();
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

/** A translation direction as the model sees it. */
export interface Direction {
  source: string;
  target: string;
}

/** The token embedding (shared by source, target and output projection) and the position table. */
export class Embeddings {
  readonly table: tf.Tensor2D; // [V, d]
  /** The table transposed once, so the output projection is an untransposed matMul. */
  readonly tableT: tf.Tensor2D; // [d, V]
  readonly positions: tf.Tensor2D; // [maxLength, d]
  readonly scale: number;
  private readonly hostCopies = new Map<tf.Tensor2D, Float32Array>();

  constructor(readonly cfg: ModelConfig, weights: Weights) {
    this.table = weight<tf.Rank.R2>(weights, 'embed');
    this.tableT = this.table.transpose();
    this.positions = sinusoidalPositions(cfg.maxLength, cfg.dModel);
    this.scale = Math.sqrt(cfg.dModel);
  }

  // ids: [B, T] from position `start`, or with T = 1 each row at its own position -> [B*T, d]
  embed(ids: number[][], start: number | readonly number[] = 0): tf.Tensor2D {
    const [b, t, d] = [ids.length, ids[0].length, this.cfg.dModel];
    const end = (typeof start === 'number' ? start : Math.max(...start)) + t;
    if (end > this.cfg.maxLength) throw new Error(`sequence of ${end} tokens exceeds maxLength ${this.cfg.maxLength}`);
    const tokens = this.tokenRows(ids.flat()).mul(this.scale);
    if (typeof start !== 'number') {
      if (t !== 1) throw new Error(`per-row positions need one token per row, got ${t}`);
      return tokens.add(this.rowsOf(this.positions, start));
    }
    const pos = this.positions.slice([start, 0], [t, d]);
    return tokens.reshape([b, t, d]).add(pos).reshape([b * t, d]);
  }

  // ids: [N] -> rows of the table [N, d]
  protected tokenRows(ids: number[]): tf.Tensor2D {
    return this.rowsOf(this.table, ids);
  }

  // table: [R, d], rows: [N] -> [N, d]
  private rowsOf(table: tf.Tensor2D, rows: readonly number[]): tf.Tensor2D {
    if (!rowsCopyOnHost()) return takeRows(table, rows);
    // A host copy of the table (it never changes at inference), so a lookup copies N rows, not the table.
    let host = this.hostCopies.get(table);
    if (host === undefined) this.hostCopies.set(table, (host = table.dataSync() as Float32Array));
    return hostRows(host, table.shape, 'float32', rows) as tf.Tensor2D;
  }

  // x: [N, d] -> logits [N, V]
  logits(x: tf.Tensor2D): tf.Tensor2D {
    return linear(x, this.tableT);
  }

  get bytes(): number {
    return tensorBytes([this.table, this.tableT, this.positions]);
  }

  dispose(): void {
    this.table.dispose();
    this.tableT.dispose();
    this.positions.dispose();
  }
}

/**
 * One encoder or decoder stack and the routing of its MoE layers. It owns its weights
 * (not the embeddings) and frees them on dispose().
 */
export abstract class Stack {
  readonly experts: (ExpertWeights[] | undefined)[];
  private readonly tasks: Map<string, number>;

  constructor(readonly cfg: ModelConfig, readonly component: Component, readonly weights: Weights) {
    this.tasks = new Map(taskList(cfg, component).map((t, i) => [t, i]));
    this.experts = Array.from({ length: numLayers(cfg, component) }, (_, i) =>
      isMoeLayer(cfg, component, i) && hasExperts(cfg, component)
        ? Array.from({ length: cfg.moe.numExperts }, (_, e) => ({
            wi: weight<tf.Rank.R2>(weights, `${this.layer(i)}.ffn.experts.${e}.wi`),
            wo: weight<tf.Rank.R2>(weights, `${this.layer(i)}.ffn.experts.${e}.wo`),
          }))
        : undefined,
    );
  }

  get routing() {
    return this.cfg.routing[this.component];
  }

  protected layer(i: number): string {
    return `${this.component}.layers.${i}`;
  }

  protected w<R extends tf.Rank>(name: string): tf.Tensor<R> {
    return weight<R>(this.weights, name);
  }

  /** Whether this stack can serve a direction (an extracted stack serves only its task). */
  serves(dir: Direction): boolean {
    const task = taskKey(this.routing, dir.source, dir.target);
    const extractedFor = this.cfg.extracted?.[this.component];
    if (extractedFor !== undefined) return task === extractedFor;
    return task === undefined || this.tasks.has(task);
  }

  /**
   * Per-sentence routes of MoE layer i for routings whose gate input is fixed per sentence: the
   * task embedding (target, pair) or a sentence summary (sentence). Undefined for a dense layer
   * and for token routing, which is decided row by row.
   * summary: [B, d], the sentence representation (used only by sentence routing).
   */
  protected sentenceRoute(i: number, dirs: Direction[], summary: () => tf.Tensor2D, collect?: GateCollector): Routes | undefined {
    if (this.experts[i] === undefined || this.routing === 'token') return undefined;
    const logits = tf.tidy(() => {
      let gateInput: tf.Tensor2D;
      if (this.routing === 'sentence') {
        gateInput = summary();
      } else {
        const rows = dirs.map((d) => {
          const t = this.tasks.get(taskKey(this.routing, d.source, d.target)!);
          if (t === undefined) throw new Error(`${this.component} has no task for ${d.source}-${d.target}`);
          return t;
        });
        gateInput = gatherRows(this.w<tf.Rank.R2>(`${this.component}.taskEmbed`), tf.tensor1d(rows, 'int32'));
      }
      return linear(gateInput, this.w(`${this.layer(i)}.ffn.gate`));
    });
    const { routes, probs } = topKGating(logits, this.cfg.moe.topK);
    collect?.({ component: this.component, layer: i, probs, top1: firstChoices(routes) });
    logits.dispose();
    probs.dispose();
    return routes;
  }

  /**
   * The FFN block of layer i on rows h: dense, or MoE with per-sentence routes (repeated over
   * rowsPerSentence rows) or per-row token routes. h: [N, d] -> [N, d]
   */
  protected ffnBlock(i: number, h: tf.Tensor2D, sentence: Routes | undefined, rowsPerSentence: number, rowValid?: boolean[], collect?: GateCollector): tf.Tensor2D {
    const experts = this.experts[i];
    const l = this.layer(i);
    if (experts === undefined) return ffn(h, this.w(`${l}.ffn.wi`), this.w(`${l}.ffn.wo`));
    let routes: Routes;
    let probs: tf.Tensor2D | undefined;
    if (sentence !== undefined) {
      routes = repeatRoutes(sentence, rowsPerSentence);
    } else {
      const logits = linear(h, this.w(`${l}.ffn.gate`));
      ({ routes, probs } = topKGating(logits, this.cfg.moe.topK));
    }
    if (rowValid !== undefined) routes = dropRows(routes, rowValid);
    if (probs !== undefined) collect?.({ component: this.component, layer: i, probs, top1: firstChoices(routes) });
    return moeFFN(h, routes, experts);
  }

  get bytes(): number {
    return tensorBytes(this.weights.values());
  }

  dispose(): void {
    disposeAll(this.weights);
  }
}

// h: [B*S, d], mask: [B*S, 1] -> per-sentence mean over valid rows [B, d]
export function maskedMean(h: tf.Tensor2D, mask: tf.Tensor2D, batch: number, srcLen: number): tf.Tensor2D {
  const d = h.shape[1];
  const sum = h.mul(mask).reshape([batch, srcLen, d]).sum(1);
  return sum.div(mask.reshape([batch, srcLen]).sum(1, true)) as tf.Tensor2D;
}
