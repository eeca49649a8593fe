// Data-parallel training over worker threads. The wasm backend uses one core per thread, so each
// batch is split into shards that workers differentiate at the same time. The calling thread keeps
// the Trainer (sampler, optimizer, checkpoints, dev evaluation): it combines the shards' gradients,
// takes the Adam step once and publishes the new weights, so there is one copy of the optimizer
// state and nothing that could drift between workers.
import type { Worker } from 'node:worker_threads';
import { RpcClient } from '../util/rpc.ts';
import { startWorker } from '../util/worker-thread.ts';
import * as tf from '@tensorflow/tfjs';
import { backendChoice } from '../backend/index.ts';
import type { ModelConfig } from '../models/config.ts';
import type { TrainSettings } from './config.ts';
import type { Example } from './data.ts';
import { type StepStats, type Trainer, batchTokens } from './trainer.ts';

/** Where one variable lives in the flat weight and gradient buffers. */
export interface Slot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

export interface TrainWorkerData {
  index: number;
  backend: string;
  cfg: ModelConfig;
  settings: TrainSettings;
  specialIds: { bosId: number; eosId: number };
  layout: Slot[];
  /** Float32 weights in layout order, written by the coordinator between steps. */
  weights: SharedArrayBuffer;
  /** Float32 gradients in layout order, written by this worker only. */
  grads: SharedArrayBuffer;
}

export type ToTrainWorker = { type: 'step'; batch: Example[] };

export type FromTrainWorker =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  /** present[i] is 1 when layout[i] got a gradient (an expert no row chose gets none). */
  | { type: 'done'; id: number; loss: number; crossEntropy: number; balance: number; present: Uint8Array }
  | { type: 'error'; id: number; message: string };

type ShardResult = FromTrainWorker & { type: 'done' };

/**
 * Deals a batch's examples to n shards, each to the shard with the fewest tokens so far, so that
 * shards of similar-length sentences cost about the same. Shards may be empty when the batch is small.
 */
export function splitBatch(batch: Example[], n: number): Example[][] {
  const shards: Example[][] = Array.from({ length: n }, () => []);
  const tokens = new Array<number>(n).fill(0);
  for (const e of batch) {
    const lightest = tokens.indexOf(Math.min(...tokens));
    shards[lightest].push(e);
    tokens[lightest] += e.source.length + e.target.length;
  }
  return shards;
}

class TrainWorker {
  readonly ready: Promise<void>;
  readonly grads: Float32Array;
  private readonly worker: Worker;
  private readonly rpc: RpcClient<ToTrainWorker, ShardResult>;
  private closing = false;
  private failed = false;

  constructor(
    readonly index: number,
    data: TrainWorkerData,
  ) {
    this.grads = new Float32Array(data.grads);
    this.worker = startWorker(import.meta.url, 'parallel-worker', data);
    this.rpc = new RpcClient((msg) => this.worker.postMessage(msg));
    this.ready = new Promise((resolve, reject) => {
      this.worker.on('message', (msg: FromTrainWorker) => {
        if (msg.type === 'ready') resolve();
        else if (msg.type === 'fatal') reject(this.fail(`failed to start: ${msg.message}`));
        else if (msg.type === 'error') this.fail(`failed: ${msg.message}`);
        else this.rpc.resolve(msg.id, msg);
      });
      this.worker.on('error', (err) => reject(this.fail(`failed: ${err.stack ?? err.message}`)));
      this.worker.on('exit', (code) => reject(this.fail(`exited (code ${code})`)));
    });
    this.ready.catch(() => {}); // start() observes it; a later failure must not raise an unhandled rejection
  }

  // -> the error every pending and later step of this worker rejects with (the first failure's)
  private fail(what: string): Error {
    const error = new Error(
      this.closing ? `train worker ${this.index} was closed` : `train worker ${this.index} ${what}`,
    );
    if (!this.failed) {
      this.failed = true;
      // A worker that failed is not trusted to go on: its tfjs scopes may be left open mid-step.
      if (!this.closing) void this.worker.terminate();
    }
    this.rpc.fail(error, { permanent: true });
    return error;
  }

  run(batch: Example[]): Promise<ShardResult> {
    return this.rpc.call({ type: 'step', batch });
  }

  async close(): Promise<void> {
    this.closing = true;
    this.fail('closed');
    await this.worker.terminate();
  }
}

/** A Trainer whose steps are computed by worker threads, one shard of each batch per worker. */
export class ParallelTrainer {
  private constructor(
    readonly trainer: Trainer,
    private readonly layout: Slot[],
    private readonly weights: Float32Array,
    private readonly workers: TrainWorker[],
  ) {}

  /** Starts `workers` threads holding the trainer's current weights; the trainer stays the caller's. */
  static async start(trainer: Trainer, workers: number): Promise<ParallelTrainer> {
    const layout: Slot[] = [];
    let total = 0;
    for (const [name, v] of trainer.variables) {
      layout.push({ name, shape: v.shape, offset: total, size: v.size });
      total += v.size;
    }
    const weights = new Float32Array(new SharedArrayBuffer(total * 4));
    const base = {
      backend: backendChoice(),
      cfg: trainer.cfg,
      settings: trainer.settings,
      layout,
      weights: weights.buffer as SharedArrayBuffer,
    };
    const specialIds = { bosId: trainer.tokenizer.bosId, eosId: trainer.tokenizer.eosId };
    const parallel = new ParallelTrainer(trainer, layout, weights, []);
    parallel.publish(layout);
    for (let index = 0; index < workers; index++) {
      parallel.workers.push(
        new TrainWorker(index, { ...base, index, specialIds, grads: new SharedArrayBuffer(total * 4) }),
      );
    }
    try {
      await Promise.all(parallel.workers.map((w) => w.ready));
    } catch (err) {
      await parallel.close();
      throw err;
    }
    return parallel;
  }

  get size(): number {
    return this.workers.length;
  }

  /** One optimizer step on the trainer's next sampled batch. */
  trainStep(): Promise<StepStats> {
    return this.trainOn(this.trainer.sampler.next());
  }

  /**
   * One step on `batch`: the same update as Trainer.trainOn up to rounding, except that the
   * load-balancing loss is taken per shard (GShard computes it per group) rather than over the batch.
   */
  async trainOn(batch: Example[]): Promise<StepStats> {
    const shards = splitBatch(batch, this.workers.length)
      .map((examples, index) => ({
        examples,
        worker: this.workers[index],
        targets: examples.reduce((n, e) => n + e.target.length, 0),
      }))
      .filter((s) => s.examples.length > 0);
    const results = await Promise.all(shards.map((s) => s.worker.run(s.examples)));
    // Each shard's cross-entropy is a mean over its target tokens, so weighting by them gives the batch's mean.
    const targets = shards.reduce((n, s) => n + s.targets, 0);
    const share = shards.map((s) => s.targets / targets);
    const mean = (key: 'loss' | 'crossEntropy' | 'balance') => results.reduce((a, r, i) => a + share[i] * r[key], 0);
    const updated: Slot[] = [];
    const grads = new Map<string, tf.Tensor>();
    this.layout.forEach((slot, j) => {
      if (!results.some((r) => r.present[j] === 1)) return;
      const sum = new Float32Array(slot.size);
      results.forEach((r, i) => {
        if (r.present[j] !== 1) return;
        const g = shards[i].worker.grads;
        const w = share[i];
        for (let k = 0; k < slot.size; k++) sum[k] += w * g[slot.offset + k];
      });
      grads.set(slot.name, tf.tensor(sum, slot.shape));
      updated.push(slot);
    });
    const update = this.trainer.adam.apply(grads);
    tf.dispose([...grads.values()]);
    this.publish(updated);
    return {
      step: this.trainer.step,
      loss: mean('loss'),
      crossEntropy: mean('crossEntropy'),
      balance: mean('balance'),
      tokens: batchTokens(batch),
      ...update,
    };
  }

  // Workers read the weights only while computing a step, and this runs only when none is.
  private publish(slots: Slot[]): void {
    for (const slot of slots)
      this.weights.set(this.trainer.variables.get(slot.name)!.dataSync() as Float32Array, slot.offset);
  }

  /** Terminates the workers; the trainer is left to its owner. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
