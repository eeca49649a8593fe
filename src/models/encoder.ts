// The encoder: self-attention and (MoE) FFN layers over the padded source batch.
import * as tf from '@tensorflow/tfjs';
import { type ModelConfig, numLayers } from './config.ts';
import { type Weights, attention, mergeHeads, splitHeads, windowBias } from './layers.ts';
import { disposeRoutes } from './moe.ts';
import { type Direction, type Embeddings, type GateCollector, Stack, maskedMean } from './stack.ts';

export interface EncoderOutput {
  out: tf.Tensor2D; // [B*S, d]
  batch: number;
  srcLen: number;
  lengths: number[];
}

export class Encoder extends Stack {
  constructor(cfg: ModelConfig, weights: Weights) {
    super(cfg, 'encoder', weights);
  }

  // ids: [B, S] padded source, lengths: [B] -> [B*S, d]. `collect` sees every gate decision (training).
  encode(emb: Embeddings, ids: number[][], dirs: Direction[], collect?: GateCollector): EncoderOutput {
    const batch = ids.length;
    const lengths = ids.map((s) => s.length);
    const srcLen = Math.max(...lengths);
    const rowValid = ids.flatMap((s) => Array.from({ length: srcLen }, (_, t) => t < s.length));
    const out = tf.tidy(() => {
      const padded = ids.map((s) => [...s, ...new Array<number>(srcLen - s.length).fill(0)]);
      const bias = windowBias(lengths.map(() => 0), lengths, srcLen);
      const validMask = tf.tensor2d(rowValid.map(Number), [batch * srcLen, 1]);
      let x = emb.embed(padded, 0, 'source');
      const heads = this.cfg.numHeads;
      for (let i = 0; i < numLayers(this.cfg, 'encoder'); i++) {
        const l = this.layer(i);
        x = this.residual(x, `${l}.selfAttn.ln`, (h) => {
          const q = splitHeads(this.proj(h, `${l}.selfAttn.wq`), batch, heads);
          const [k, v] = tf.split(this.proj(h, `${l}.selfAttn.wkv`), 2, 1) as tf.Tensor2D[];
          const a = attention(q, splitHeads(k, batch, heads), splitHeads(v, batch, heads), bias);
          return this.proj(mergeHeads(a), `${l}.selfAttn.wo`);
        });
        x = this.residual(x, `${l}.ffn.ln`, (h) => {
          const routes = this.sentenceRoute(i, dirs, () => maskedMean(h, validMask, batch, srcLen), collect);
          const y = this.ffnBlock(i, h, routes, srcLen, rowValid, collect);
          disposeRoutes(routes);
          return y;
        });
      }
      return this.finalNorm(x);
    });
    return { out, batch, srcLen, lengths };
  }
}

