// What the encoder and the decoder share: the Stack of layers with the routing of its MoE layers
// (per token, or per sentence by its task) and the architecture's blocks (pre- or post-LN residuals,
// biases). The embeddings live in embeddings.ts.
import * as tf from '@tensorflow/tfjs';
import { type Architecture, type Component, type ModelConfig, archOf, biasName, hasExperts, isMoeLayer, numLayers, taskKey, taskList } from './config.ts';
import { type FfnWeights, type Weights, layerNorm, linear, ffn, weight } from './layers.ts';
import { type ExpertWeights, type GateCollector, type Routes, dropRows, firstChoices, moeFFN, repeatRoutes, topKGating } from './moe.ts';
import { gatherRows } from './ops.ts';
import { runDisposeHooks, tensorBytes } from './embeddings.ts';

export { Embeddings, type Side, embeddingNames, tensorBytes } from './embeddings.ts';
export { type GateCollector, type GateRecord, firstChoices } from './moe.ts';

export function disposeAll(w: Weights): void {
  for (const t of w.values()) t.dispose();
  w.clear();
}

/** A translation direction as the model sees it. */
export interface Direction {
  source: string;
  target: string;
}

/**
 * One encoder or decoder stack and the routing of its MoE layers. It owns its weights
 * (not the embeddings) and frees them on dispose().
 */
export abstract class Stack {
  readonly experts: (ExpertWeights[] | undefined)[];
  readonly arch: Architecture;
  private readonly tasks: Map<string, number>;
  /** Set once the tfjs tensors were freed (dropTensors): the bytes they held, now held by ONNX Runtime. */
  private droppedBytes: number | undefined;

  constructor(readonly cfg: ModelConfig, readonly component: Component, readonly weights: Weights) {
    this.arch = archOf(cfg);
    this.tasks = new Map(taskList(cfg, component).map((t, i) => [t, i]));
    this.experts = Array.from({ length: numLayers(cfg, component) }, (_, i) =>
      isMoeLayer(cfg, component, i) && hasExperts(cfg, component)
        ? Array.from({ length: cfg.moe.numExperts }, (_, e) => this.ffnWeights(`${this.layer(i)}.ffn.experts.${e}`))
        : undefined,
    );
  }

  /** The FFN under `prefix` (`….ffn` or `….ffn.experts.e`), its biases when the model has them. */
  protected ffnWeights(prefix: string): FfnWeights {
    return {
      wi: this.w(`${prefix}.wi`), wo: this.w(`${prefix}.wo`),
      bi: this.weights.get(`${prefix}.bi`) as tf.Tensor1D | undefined, bo: this.weights.get(`${prefix}.bo`) as tf.Tensor1D | undefined,
    };
  }

  // h: [N, in] -> h w + b: [N, out], `name` the weight ("….wq"); the bias is used when the model has one
  protected proj(h: tf.Tensor2D, name: string): tf.Tensor2D {
    return linear(h, this.w(name), this.weights.get(biasName(name)) as tf.Tensor1D | undefined);
  }

  // x: [N, d] -> LN(x) with the named norm ("….selfAttn.ln")
  protected norm(x: tf.Tensor2D, ln: string): tf.Tensor2D {
    return layerNorm(x, this.w(`${ln}.g`), this.w(`${ln}.b`), this.arch.layerNormEps);
  }

  /** A residual block around f: x + f(LN(x)) for pre-LN, LN(x + f(x)) for post-LN (Marian). x: [N, d] -> [N, d] */
  protected residual(x: tf.Tensor2D, ln: string, f: (h: tf.Tensor2D) => tf.Tensor2D): tf.Tensor2D {
    if (this.arch.norm === 'post') return this.norm(x.add(f(x)), ln);
    return x.add(f(this.norm(x, ln)));
  }

  /** The stack's output: its final LN for pre-LN models; post-LN layers end normalised already. */
  protected finalNorm(x: tf.Tensor2D): tf.Tensor2D {
    return this.arch.norm === 'pre' ? this.norm(x, `${this.component}.lnF`) : x;
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
    if (experts === undefined) return ffn(h, this.ffnWeights(`${l}.ffn`), this.arch.activation);
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
    return moeFFN(h, routes, experts, this.arch.activation);
  }

  get bytes(): number {
    return this.droppedBytes ?? tensorBytes(this.weights.values());
  }

  /**
   * Frees the tfjs copies of the weights once ONNX Runtime sessions hold them (serving), so they are
   * not held twice; `bytes` still counts them, as the sessions do. The stack no longer runs on tfjs.
   */
  dropTensors(): void {
    this.droppedBytes = this.bytes;
    disposeAll(this.weights);
  }

  /** Whether dropTensors ran. */
  get tensorsDropped(): boolean {
    return this.droppedBytes !== undefined;
  }

  dispose(): void {
    runDisposeHooks(this);
    disposeAll(this.weights);
  }
}

// h: [B*S, d], mask: [B*S, 1] -> per-sentence mean over valid rows [B, d]
export function maskedMean(h: tf.Tensor2D, mask: tf.Tensor2D, batch: number, srcLen: number): tf.Tensor2D {
  const d = h.shape[1];
  const sum = h.mul(mask).reshape([batch, srcLen, d]).sum(1);
  return sum.div(mask.reshape([batch, srcLen]).sum(1, true)) as tf.Tensor2D;
}
