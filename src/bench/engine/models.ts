// The engine benchmark's models: random weights drawn on the host (fast, for ~450M parameters) and
// one group of variants built over shared tensors, as a server shares its encoder.
import * as tf from '@tensorflow/tfjs';
import type { TensorSource } from '../../models/checkpoint.ts';
import {
  type ModelConfig,
  type TensorShapes,
  isTaskRouting,
  tensorComponent,
  tensorShapes,
} from '../../models/config.ts';
import type { Weights } from '../../models/layers.ts';
import { Seq2Seq } from '../../models/model.ts';
import { Decoder, Embeddings, Encoder } from '../../models/transformer.ts';
import { mulberry32 } from '../../util/random.ts';
import { DIRECTION, SRC_LEN, type Variant, variantConfig } from './costs.ts';

/**
 * Scale of the decoder's cross-attention projections over init.ts's. With plain random weights the
 * residual stream is dominated by the input token's (tied) embedding, greedy decoding repeats BOS
 * for every sentence, and token routing then sends the whole batch to the same few experts (5-8 of
 * 32 at B=64 instead of the ~31 a load-balanced model touches). Scaling cross-attention makes each
 * sentence's state depend on its source, so outputs and token routes spread out. It changes no
 * shape and no amount of work.
 */
export const CROSS_ATTENTION_SCALE = 4;

export type HostWeights = Map<string, { shape: number[]; data: Float32Array }>;

/**
 * Random weights on the host with the scales of src/models/init.ts (projections of variance
 * 1/fan_in, embeddings 1/d, task embeddings 1, layer norms 1 and 0), drawn uniformly, which is
 * far faster than tf.randomNormal for ~450M parameters; the decoder's cross-attention is scaled by
 * CROSS_ATTENTION_SCALE.
 */
export function hostWeights(cfg: ModelConfig, seed: number, crossScale = CROSS_ATTENTION_SCALE): HostWeights {
  const out: HostWeights = new Map();
  let x = (seed * 2654435761) >>> 0 || 1; // xorshift32, inlined: ~150M values/s
  for (const [name, shape] of tensorShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('.g')) data.fill(1);
    else if (!name.endsWith('.b')) {
      let std =
        name === 'embed' ? 1 / Math.sqrt(cfg.dModel) : name.endsWith('.taskEmbed') ? 1 : 1 / Math.sqrt(shape[0]);
      if (/^decoder\.layers\.\d+\.crossAttn\.w/.test(name)) std *= crossScale;
      const a = 2 * Math.sqrt(3) * std; // uniform on [-sqrt(3) std, sqrt(3) std]
      for (let i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        data[i] = ((x >>> 0) / 4294967296 - 0.5) * a;
      }
    }
    out.set(name, { shape, data });
  }
  return out;
}

export function toDevice(host: HostWeights, names: Iterable<string>): Weights {
  const w: Weights = new Map();
  for (const name of names) {
    const h = host.get(name);
    if (h === undefined) throw new Error(`no host weights for ${name}`);
    w.set(name, tf.tensor(h.data, h.shape, 'float32'));
  }
  return w;
}

export function sources(batch: number, vocab: number, seed: number): number[][] {
  const r = mulberry32(seed);
  return Array.from({ length: batch }, () => Array.from({ length: SRC_LEN }, () => 4 + Math.floor(r() * (vocab - 4))));
}

export function decoderParams(model: Seq2Seq): number {
  let n = 0;
  for (const [name, t] of model.decoder.weights) if (tensorComponent(name) === 'decoder') n += t.size;
  return n;
}

/** Current size of the wasm heap (it grows, never shrinks; 4 GiB at most), or 0 on other backends. */
export function wasmHeapBytes(): number {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.byteLength ?? 0;
}

/** Tensors readComponent reads only to route or fold (and then disposes): a task-routed component's task embedding, gates and experts. */
function foldedAway(cfg: ModelConfig, name: string): boolean {
  const c = tensorComponent(name);
  return (
    c !== 'embeddings' &&
    isTaskRouting(cfg.routing[c]) &&
    (name.endsWith('.taskEmbed') || name.endsWith('.ffn.gate') || name.includes('.ffn.experts.'))
  );
}

/**
 * A TensorSource over device tensors that hands out the tensors themselves, except the ones
 * readComponent disposes after folding (copied). Handing out clone()s instead would duplicate the
 * whole shared encoder and the embeddings (~1 GB for wmt32): on the wasm backend clone() is a full
 * copy (its Identity kernel copies the buffer).
 */
class SharedSource implements TensorSource {
  constructor(
    readonly config: ModelConfig,
    private readonly weights: Weights,
  ) {}

  get shapes(): TensorShapes {
    return new Map([...this.weights].map(([n, t]) => [n, t.shape]));
  }

  async read(names: Iterable<string>): Promise<Map<string, tf.Tensor>> {
    return new Map(
      [...names].map((n) => {
        const t = this.weights.get(n);
        if (t === undefined) throw new Error(`no tensor "${n}"`);
        return [n, foldedAway(this.config, n) ? t.clone() : t];
      }),
    );
  }
}

/**
 * The models of one group, from the same random weights for every MoE variant, sharing tensors
 * (not copies): one Embeddings and one Encoder for all (every MoE variant has the same token-routed
 * encoder, as a server shares it), and the decoders' common tensors. The extracted decoder is
 * Seq2Seq.loadSubnetwork's, over a SharedSource of the same weights. Each model's `.bytes` still
 * counts everything it uses, as if it stood alone; XNNPACK packs each shared weight once.
 */
export async function buildGroup(
  cfg: ModelConfig,
  variants: readonly Variant[],
  host: HostWeights,
): Promise<Map<Variant, Seq2Seq>> {
  const models = new Map<Variant, Seq2Seq>();
  if (variants.includes('dense')) {
    const dc = variantConfig(cfg, 'dense');
    models.set('dense', Seq2Seq.fromWeights(dc, toDevice(host, tensorShapes(dc).keys())));
    return models;
  }
  const taskCfg = variantConfig(cfg, 'task');
  const shared = toDevice(host, tensorShapes(taskCfg).keys());
  const pick = (c: ModelConfig, prefix: string): Weights =>
    new Map([...tensorShapes(c).keys()].filter((n) => n.startsWith(prefix)).map((n) => [n, shared.get(n)!]));
  const emb = new Embeddings(taskCfg, pick(taskCfg, 'embed'));
  const enc = new Encoder(taskCfg, pick(taskCfg, 'encoder.'));
  for (const v of variants) {
    const vc = variantConfig(cfg, v);
    if (v === 'task-extracted') {
      const sub = await Seq2Seq.loadSubnetwork(new SharedSource(taskCfg, shared), DIRECTION);
      // Keep its decoder; its embeddings' table and its encoder's tensors are the shared ones.
      tf.dispose([sub.embeddings.tableT, sub.embeddings.positions]);
      models.set(v, new Seq2Seq(sub.config, emb, enc, sub.decoder));
    } else {
      models.set(v, new Seq2Seq(vc, emb, enc, new Decoder(vc, pick(vc, 'decoder.'))));
    }
  }
  const used = new Set([...models.values()].flatMap((m) => [...m.weights.values()]));
  for (const t of shared.values()) if (!used.has(t)) t.dispose(); // e.g. the task embedding when only token runs
  return models;
}
