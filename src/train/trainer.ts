// One training run in memory: the model over tf.Variables, the optimizer, the sampler, and the
// forward pass that turns a batch into the loss (cross-entropy plus load balancing).
import * as tf from '@tensorflow/tfjs';
import { corpusBleu, corpusChrf } from '../eval/bleu-chrf.ts';
import type { ModelConfig } from '../models/config.ts';
import { decode } from '../models/decoding.ts';
import { initWeights } from '../models/init.ts';
import type { Weights } from '../models/layers.ts';
import { Seq2Seq } from '../models/model.ts';
import { writeCheckpoint } from '../models/checkpoint.ts';
import { gatherRows, matMul2d, nativeKernels } from '../models/ops.ts';
import { Decoder, type Direction, Embeddings, Encoder, type GateCollector } from '../models/transformer.ts';
import type { Tokenizer } from '../tokenizer/index.ts';
import type { TrainSettings } from './config.ts';
import { BatchSampler, type Example, exampleLength } from './data.ts';
import { Rng } from '../util/random.ts';
import { loadBalancingLoss, outputCrossEntropy } from './loss.ts';
import { Adam, type UpdateStats } from './optimizer.ts';
import { type TrainingState, saveTrainingState } from './state.ts';

/** Embeddings whose output projection transposes the live table on each call, so that it trains. */
class TrainableEmbeddings extends Embeddings {
  // ids: [N] -> [N, d], differentiable with respect to the table
  protected override tokenRows(table: tf.Tensor2D, ids: number[]): tf.Tensor2D {
    return gatherRows(table, tf.tensor1d(ids, 'int32'));
  }

  // x: [N, d] -> logits [N, V] (dev decoding; TensorFlow reads the table transposed in place)
  override logits(x: tf.Tensor2D): tf.Tensor2D {
    return nativeKernels() ? tf.matMul(x, this.table, false, true) : matMul2d(x, this.table.transpose());
  }
}

export interface StepStats extends UpdateStats {
  step: number;
  /** Cross-entropy plus balanceWeight times the load-balancing loss. */
  loss: number;
  crossEntropy: number;
  /** Sum over MoE gates of E * sum_e f_e P_e (1 per gate when balanced). */
  balance: number;
  /** Real (unpadded) source plus target tokens in the batch. */
  tokens: number;
}

export interface DevScores {
  step: number;
  loss: number;
  /** Averages over directions of BLEU and chrF of greedy translations. */
  bleu: number;
  chrf: number;
}

/** Dev sentences to translate: tokenized source, reference text. */
export interface DevTranslations {
  dir: Direction;
  sources: number[][];
  references: string[];
}

// Variable names are global to the tfjs engine, so each replica gets its own prefix.
let replicas = 0;

/** Gradients of a batch's total loss, keyed like `variables` (unused variables have none), with the loss terms. */
export interface BatchGradients {
  grads: Map<string, tf.Tensor>;
  loss: number;
  crossEntropy: number;
  balance: number;
}

/**
 * The model over tf.Variables and its training losses: all a data-parallel worker needs, and the
 * part of a Trainer that is not optimizer or sampler.
 */
export class Replica {
  readonly model: Seq2Seq;

  protected constructor(
    readonly cfg: ModelConfig,
    readonly settings: TrainSettings,
    private readonly specialIds: { bosId: number; eosId: number },
    readonly variables: Map<string, tf.Variable>,
  ) {
    const part = (prefix: string): Weights => new Map([...variables].filter(([n]) => n.startsWith(prefix)));
    this.model = new Seq2Seq(
      cfg,
      new TrainableEmbeddings(cfg, part('embed')),
      new Encoder(cfg, part('encoder.')),
      new Decoder(cfg, part('decoder.')),
    );
  }

  /** Variables holding `weights`, which it takes ownership of. */
  protected static variablesOf(weights: Map<string, tf.Tensor>): Map<string, tf.Variable> {
    const prefix = `taskmoe.train${replicas++}/`;
    const variables = new Map([...weights].map(([name, t]) => [name, tf.variable(t, true, prefix + name)]));
    tf.dispose([...weights.values()]);
    return variables;
  }

  /** A replica over `weights`, which it takes ownership of. */
  static fromWeights(
    cfg: ModelConfig,
    settings: TrainSettings,
    specialIds: { bosId: number; eosId: number },
    weights: Map<string, tf.Tensor>,
  ): Replica {
    return new Replica(cfg, settings, specialIds, Replica.variablesOf(weights));
  }

  /**
   * The losses of a batch. Load-balancing terms are computed inside the model's own tidy scopes,
   * so they are kept and listed in `kept` for the caller to free once gradients are taken.
   * `withGradients` false (evaluation) skips the output layer's gradients, which it computes in its forward pass.
   */
  losses(
    batch: Example[],
    withGradients = true,
  ): { total: tf.Scalar; crossEntropy: tf.Scalar; balance: tf.Scalar; kept: tf.Tensor[] } {
    const { bosId, eosId } = this.specialIds;
    const dirs = batch.map((e) => e.dir);
    const t = Math.max(...batch.map((e) => e.target.length));
    // Decoder input is the target shifted right behind BOS; padding after it is masked out of the
    // loss and, being later in time, cannot reach earlier positions through the causal mask.
    const decoderInput = batch.map((e) => [
      bosId,
      ...e.target.slice(0, -1),
      ...new Array<number>(t - e.target.length).fill(eosId),
    ]);
    const mask = batch.flatMap((e) => Array.from({ length: t }, (_, i) => (i < e.target.length ? 1 : 0)));
    // Rows of real target tokens in the decoder's [B*T] output: only they are projected and scored.
    const realRows = batch.flatMap((e, b) => e.target.map((_, i) => b * t + i));
    const kept: tf.Tensor[] = [];
    const collectEncoder: GateCollector = (g) => kept.push(tf.keep(loadBalancingLoss(g.probs, g.top1)));
    // Decoder token gates see padded target rows; sentence gates (one row per sentence) do not.
    const collectDecoder: GateCollector = (g) => {
      const top1 = g.top1.length === mask.length ? g.top1.map((e, row) => (mask[row] === 1 ? e : -1)) : g.top1;
      kept.push(tf.keep(loadBalancingLoss(g.probs, top1)));
    };
    const enc = this.model.encoder.encode(
      this.model.embeddings,
      batch.map((e) => e.source),
      dirs,
      collectEncoder,
    );
    const state = this.model.decoder.start(enc, dirs, 1, collectDecoder);
    const states = this.model.decoder.forward(this.model.embeddings, state, decoderInput, collectDecoder, 'states');
    const crossEntropy = outputCrossEntropy(
      gatherRows(states, tf.tensor1d(realRows, 'int32')),
      this.model.embeddings.table,
      batch.flatMap((e) => e.target),
      this.settings.labelSmoothing,
      withGradients,
    );
    const balance = kept.length > 0 ? tf.addN(kept as tf.Scalar[]) : tf.scalar(0);
    const total = crossEntropy.add(balance.mul(this.settings.balanceWeight)) as tf.Scalar;
    return { total, crossEntropy, balance, kept };
  }

  /** Gradients of the batch's total loss; the caller disposes them. */
  gradients(batch: Example[]): BatchGradients {
    let crossEntropy = 0;
    let balance = 0;
    const kept: tf.Tensor[] = [];
    const byVariable = new Map([...this.variables].map(([name, v]) => [v.name, name]));
    const { value, grads } = tf.variableGrads(() => {
      const l = this.losses(batch);
      kept.push(...l.kept);
      crossEntropy = l.crossEntropy.dataSync()[0];
      balance = l.balance.dataSync()[0];
      return l.total;
    }, [...this.variables.values()]);
    const loss = value.dataSync()[0];
    tf.dispose([value, ...kept]);
    return {
      grads: new Map(Object.entries(grads).map(([v, g]) => [byVariable.get(v)!, g])),
      loss,
      crossEntropy,
      balance,
    };
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** Real (unpadded) source plus target tokens of a batch. */
export function batchTokens(batch: Example[]): number {
  return batch.reduce((n, e) => n + e.source.length + e.target.length, 0);
}

export class Trainer extends Replica {
  readonly adam: Adam;

  private constructor(
    cfg: ModelConfig,
    settings: TrainSettings,
    readonly tokenizer: Tokenizer,
    variables: Map<string, tf.Variable>,
    readonly sampler: BatchSampler,
  ) {
    super(cfg, settings, tokenizer, variables);
    this.adam = new Adam(settings, variables);
  }

  /** A fresh run (weights from settings.seed), or one continuing from a saved state, which it takes ownership of. */
  static create(
    cfg: ModelConfig,
    settings: TrainSettings,
    tokenizer: Tokenizer,
    examples: Map<string, Example[]>,
    resume?: TrainingState,
  ): Trainer {
    const variables = Replica.variablesOf(resume?.weights ?? initWeights(cfg, settings.seed));
    const sampler = new BatchSampler(
      examples,
      settings.temperature,
      settings.batchTokens,
      new Rng(resume?.rngState ?? settings.seed),
    );
    const trainer = new Trainer(cfg, settings, tokenizer, variables, sampler);
    if (resume !== undefined) trainer.adam.restore(resume.step, resume.m, resume.v);
    return trainer;
  }

  get step(): number {
    return this.adam.step;
  }

  /** One optimizer step on the next sampled batch. */
  trainStep(): StepStats {
    return this.trainOn(this.sampler.next());
  }

  trainOn(batch: Example[]): StepStats {
    const { grads, loss, crossEntropy, balance } = this.gradients(batch);
    const update = this.adam.apply(grads);
    tf.dispose([...grads.values()]);
    return { step: this.step, loss, crossEntropy, balance, tokens: batchTokens(batch), ...update };
  }

  /** Token-weighted mean cross-entropy (label smoothing included) of examples, batched by length. */
  devLoss(examples: Example[]): number {
    const sorted = [...examples].sort((a, b) => exampleLength(a) - exampleLength(b));
    let sum = 0;
    let tokens = 0;
    for (let start = 0; start < sorted.length;) {
      const longest = exampleLength(sorted[Math.min(sorted.length - 1, start + 1)]);
      const size = Math.max(1, Math.floor(this.settings.batchTokens / Math.max(longest, 1)));
      const batch = sorted.slice(start, start + size);
      start += batch.length;
      const n = batch.reduce((a, e) => a + e.target.length, 0);
      tf.tidy(() => {
        const l = this.losses(batch, false);
        sum += l.crossEntropy.dataSync()[0] * n;
        tf.dispose(l.kept);
      });
      tokens += n;
    }
    return sum / Math.max(1, tokens);
  }

  /** BLEU and chrF of greedy translations, averaged over directions. */
  devScores(sets: DevTranslations[], batchSize = 32): { bleu: number; chrf: number } {
    let bleu = 0;
    let chrf = 0;
    for (const { dir, sources, references } of sets) {
      const hypotheses: string[] = [];
      for (let start = 0; start < sources.length; start += batchSize) {
        const batch = sources.slice(start, start + batchSize);
        const hyps = decode(
          this.model,
          batch,
          batch.map(() => dir),
          { bosId: this.tokenizer.bosId, eosId: this.tokenizer.eosId },
        );
        hypotheses.push(...hyps.map((h) => this.tokenizer.decode(h[0].tokens)));
      }
      bleu += corpusBleu(hypotheses, references).score / sets.length;
      chrf += corpusChrf(hypotheses, references) / sets.length;
    }
    return { bleu, chrf };
  }

  /** Saves weights, optimizer state and sampler state atomically into dir. */
  async save(dir: string, tokenizerFile: string): Promise<void> {
    await saveTrainingState(
      dir,
      this.cfg,
      tokenizerFile,
      this.variables,
      this.adam.m,
      this.adam.v,
      this.step,
      this.sampler.rng.state,
    );
  }

  /** Saves the weights alone, as a model checkpoint. */
  async saveModel(dir: string, tokenizerFile: string): Promise<void> {
    await writeCheckpoint(dir, this.cfg, this.variables, tokenizerFile);
  }

  override dispose(): void {
    this.adam.dispose();
    super.dispose();
  }
}
