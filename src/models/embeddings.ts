// Token embeddings, positions and the output projection. taskmoe's own models share one table for
// source, target and output; imported models may have a target table ("embed.target"), a separate
// output matrix ("output"), a logits bias, and other position tables (config.arch).
import * as tf from '@tensorflow/tfjs';
import { type Architecture, type ModelConfig, archOf, tensorComponent, tensorShapes } from './config.ts';
import { type Weights, linear, sinusoidalPositions, weight } from './layers.ts';
import { hostRows, rowsCopyOnHost, takeRows } from './ops.ts';

/** Bytes held by a set of tensors. */
export function tensorBytes(tensors: Iterable<tf.Tensor>): number {
  let bytes = 0;
  for (const t of tensors) bytes += t.size * (t.dtype === 'int32' || t.dtype === 'float32' ? 4 : 1);
  return bytes;
}

const disposeHooks = new WeakMap<object, (() => void)[]>();

/** Runs `fn` when `part` (embeddings, an encoder or a decoder) is disposed: ONNX Runtime releases the sessions built from it then. */
export function onDispose(part: object, fn: () => void): void {
  disposeHooks.set(part, [...(disposeHooks.get(part) ?? []), fn]);
}

/** Runs and forgets the part's dispose hooks. */
export function runDisposeHooks(part: object): void {
  const hooks = disposeHooks.get(part) ?? [];
  disposeHooks.delete(part);
  for (const fn of hooks) fn();
}

/** Names of the tensors the embeddings own ("embed", and for imported models "embed.target", "output", …). */
export function embeddingNames(cfg: ModelConfig): string[] {
  return [...tensorShapes(cfg).keys()].filter((n) => tensorComponent(n) === 'embeddings');
}

export type Side = 'source' | 'target';

export class Embeddings {
  readonly table: tf.Tensor2D; // [V, d], the source's (and, when shared, the target's)
  readonly targetTable: tf.Tensor2D; // [Vt, d]
  /** The output projection, [d, Vt]: the target table transposed once (an untransposed matMul), or "output". */
  readonly tableT: tf.Tensor2D;
  readonly logitsBias: tf.Tensor1D | undefined; // [Vt]
  readonly positions: tf.Tensor2D; // [maxLength, d], position 0 first
  readonly scale: number;
  readonly arch: Architecture;
  private readonly hostCopies = new Map<tf.Tensor2D, Float32Array>();
  /** Set by dropDerived: the bytes held before. */
  private droppedBytes: number | undefined;

  constructor(readonly cfg: ModelConfig, readonly weights: Weights) {
    this.arch = archOf(cfg);
    this.table = weight<tf.Rank.R2>(weights, 'embed');
    this.targetTable = weights.has('embed.target') ? weight<tf.Rank.R2>(weights, 'embed.target') : this.table;
    this.tableT = this.arch.tiedOutput ? this.targetTable.transpose() : weight<tf.Rank.R2>(weights, 'output');
    this.logitsBias = this.arch.logitsBias ? weight<tf.Rank.R1>(weights, 'output.bias') : undefined;
    const { positions, positionOffset } = this.arch;
    this.positions = positions === 'learned'
      ? weight<tf.Rank.R2>(weights, 'embed.positions').slice([positionOffset, 0], [cfg.maxLength, cfg.dModel])
      : sinusoidalPositions(cfg.maxLength, cfg.dModel, positions, positionOffset);
    this.scale = this.arch.scaleEmbedding ? Math.sqrt(cfg.dModel) : 1;
  }

  // ids: [B, T] from position `start`, or with T = 1 each row at its own position -> [B*T, d]
  embed(ids: number[][], start: number | readonly number[] = 0, side: Side = 'source'): tf.Tensor2D {
    const [b, t, d] = [ids.length, ids[0].length, this.cfg.dModel];
    const end = (typeof start === 'number' ? start : Math.max(...start)) + t;
    if (end > this.cfg.maxLength) throw new Error(`sequence of ${end} tokens exceeds maxLength ${this.cfg.maxLength}`);
    const rows = this.tokenRows(side === 'source' ? this.table : this.targetTable, ids.flat());
    const tokens = this.scale === 1 ? rows : rows.mul(this.scale);
    if (typeof start !== 'number') {
      if (t !== 1) throw new Error(`per-row positions need one token per row, got ${t}`);
      return tokens.add(this.rowsOf(this.positions, start));
    }
    const pos = this.positions.slice([start, 0], [t, d]);
    return tokens.reshape([b, t, d]).add(pos).reshape([b * t, d]);
  }

  // table: [V, d], ids: [N] -> rows of the table [N, d]
  protected tokenRows(table: tf.Tensor2D, ids: number[]): tf.Tensor2D {
    return this.rowsOf(table, ids);
  }

  // table: [R, d], rows: [N] -> [N, d]
  private rowsOf(table: tf.Tensor2D, rows: readonly number[]): tf.Tensor2D {
    if (!rowsCopyOnHost()) return takeRows(table, rows);
    // A host copy of the table (it never changes at inference), so a lookup copies N rows, not the table.
    let host = this.hostCopies.get(table);
    if (host === undefined) this.hostCopies.set(table, (host = table.dataSync() as Float32Array));
    return hostRows(host, table.shape, 'float32', rows) as tf.Tensor2D;
  }

  // x: [N, d] -> logits [N, Vt]
  logits(x: tf.Tensor2D): tf.Tensor2D {
    return linear(x, this.tableT, this.logitsBias);
  }

  /** Every tensor held: the stored weights and the derived ones (transposed table, positions). */
  private get held(): tf.Tensor[] {
    return [...new Set([...this.weights.values(), this.tableT, this.positions])];
  }

  get bytes(): number {
    return this.droppedBytes ?? tensorBytes(this.held);
  }

  /**
   * Frees the derived tensors (the transposed output table, the position table) once ONNX Runtime
   * serves: its graphs build their own from the stored weights, which stay for later graphs. `bytes`
   * still counts them; the embeddings no longer run on tfjs.
   */
  dropDerived(): void {
    if (this.droppedBytes !== undefined) return;
    this.droppedBytes = this.bytes;
    const stored = new Set(this.weights.values());
    for (const t of [this.tableT, this.positions]) if (!stored.has(t)) t.dispose();
  }

  dispose(): void {
    runDisposeHooks(this);
    for (const t of this.held) t.dispose();
  }
}
