// `taskmoe import --from hf SRC --out DIR`: a Hugging Face MarianMTModel, M2M100ForConditionalGeneration
// (M2M-100, dense NLLB-200) or NllbMoeForConditionalGeneration checkpoint becomes a taskmoe checkpoint.
// Weights are transposed to [in, out], keys and values joined into one projection; the tokenizer
// files are copied with a {piece: id} vocabulary; config.json's fields become taskmoe config fields.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type StorageDtype, writeCheckpoint } from '../models/checkpoint.ts';
import { type Component, type ModelConfig, biasName, parseConfig } from '../models/config.ts';
import { type HfConfig, architectureOf, readHfConfig } from './hf-config.ts';
import { type HfTokenizer, readHfTokenizer } from './hf-tokenizer.ts';
import { ImportError, SafetensorsDir } from './safetensors.ts';

export interface ImportOptions {
  /** Source languages (comma-separated on the command line); Marian models name their pair only here or in tokenizer_config.json. */
  sources?: string[];
  targets?: string[];
  dtype?: StorageDtype;
}

async function readJson(file: string): Promise<unknown> {
  if (!fs.existsSync(file)) throw new ImportError(`missing file ${file}`);
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (err) {
    throw new ImportError(`${file}: invalid JSON (${(err as Error).message})`);
  }
}

/** Imports SRC into OUT; returns the written config. */
export async function importHf(src: string, out: string, opts: ImportOptions = {}): Promise<ModelConfig> {
  const hf = readHfConfig(await readJson(path.join(src, 'config.json')), path.join(src, 'config.json'));
  const generation = fs.existsSync(path.join(src, 'generation_config.json'))
    ? ((await readJson(path.join(src, 'generation_config.json'))) as Record<string, unknown>)
    : {};
  const tensors = await SafetensorsDir.open(src);
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'taskmoe-import-'));
  try {
    const tok = await readHfTokenizer(src, hf, tmp, opts);
    const cfg = taskmoeConfig(hf, tok, generation);
    const weights = await convertWeights(tensors, hf, cfg);
    try {
      await writeCheckpoint(out, cfg, weights, tok.files[0][1], opts.dtype ?? 'float32', tok.files.slice(1));
    } finally {
      tf.dispose([...weights.values()]);
    }
    return cfg;
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

function taskmoeConfig(hf: HfConfig, tok: HfTokenizer, generation: Record<string, unknown>): ModelConfig {
  const o = hf.raw;
  const moe = hf.family === 'nllb_moe';
  const badWords = (generation.bad_words_ids ?? o.bad_words_ids) as number[][] | undefined;
  const raw = {
    vocabSize: tok.vocabSize,
    dModel: o.d_model,
    numHeads: o.encoder_attention_heads,
    dFF: o.encoder_ffn_dim,
    encoderLayers: o.encoder_layers,
    decoderLayers: o.decoder_layers,
    moe: moe
      ? { numExperts: o.num_experts, topK: 2, every: o.encoder_sparse_step }
      : { numExperts: 1, topK: 1, every: 1 },
    routing: moe ? { encoder: 'token', decoder: 'token' } : { encoder: 'dense', decoder: 'dense' },
    languages: tok.languages,
    pairs: tok.pairs,
    maxLength: o.max_position_embeddings,
    tokenizer: tok.files[0][0],
    ...tok.fields,
    arch: architectureOf(hf),
    suppressIds: badWords?.every((w) => w.length === 1) ? badWords.map((w) => w[0]) : undefined,
  };
  if (badWords !== undefined && !badWords.every((w) => w.length === 1))
    throw new ImportError('bad_words_ids with multi-token entries is not supported');
  return parseConfig(JSON.parse(JSON.stringify(raw)), 'the imported config');
}

/** The taskmoe tensors of a Hugging Face checkpoint, shapes checked against its config. */
async function convertWeights(st: SafetensorsDir, hf: HfConfig, cfg: ModelConfig): Promise<Map<string, tf.Tensor>> {
  const o = hf.raw;
  const d = cfg.dModel;
  const out = new Map<string, tf.Tensor>();
  const read = async (name: string, shape: number[]): Promise<Float32Array> => {
    const actual = st.shape(name);
    if (actual === undefined) throw new ImportError(`the checkpoint has no tensor "${name}"`);
    if (actual.length !== shape.length || actual.some((x, i) => x !== shape[i])) {
      throw new ImportError(`tensor "${name}" has shape [${actual}], expected [${shape}] from config.json`);
    }
    return (await st.read(name)).data;
  };
  const first = (...names: string[]) => names.find((n) => st.has(n)) ?? names[0];
  // torch Linear [out, in] (+ bias [out]) -> taskmoe [in, out] (+ [out]), times `scale`
  const linear = async (to: string, from: string, inDim: number, outDim: number, scale = 1) => {
    const [w, b] = [await read(`${from}.weight`, [outDim, inDim]), await read(`${from}.bias`, [outDim])];
    out.set(
      to,
      tf.tidy(() => tf.tensor2d(w, [outDim, inDim]).transpose().mul(scale)),
    );
    out.set(
      biasName(to),
      tf.tidy(() => tf.tensor1d(b).mul(scale)),
    );
  };
  const norm = async (to: string, from: string) => {
    out.set(`${to}.g`, tf.tensor1d(await read(`${from}.weight`, [d])));
    out.set(`${to}.b`, tf.tensor1d(await read(`${from}.bias`, [d])));
  };
  const attention = async (to: string, from: string) => {
    await linear(`${to}.wq`, `${from}.q_proj`, d, d);
    await linear(`${to}.wo`, `${from}.out_proj`, d, d);
    await linear(`${to}.wk`, `${from}.k_proj`, d, d);
    await linear(`${to}.wv`, `${from}.v_proj`, d, d);
    for (const [w, k, v] of [
      ['wkv', 'wk', 'wv'],
      ['bkv', 'bk', 'bv'],
    ]) {
      const [kt, vt] = [out.get(`${to}.${k}`)!, out.get(`${to}.${v}`)!];
      out.set(`${to}.${w}`, tf.concat([kt, vt], kt.rank - 1));
      out.delete(`${to}.${k}`);
      out.delete(`${to}.${v}`);
      tf.dispose([kt, vt]);
    }
  };
  const vs = cfg.vocabSize;
  const vt = cfg.targetVocabSize ?? vs;
  if (cfg.targetVocabSize === undefined) {
    out.set(
      'embed',
      tf.tensor2d(await read(first('model.shared.weight', 'model.encoder.embed_tokens.weight'), [vs, d]), [vs, d]),
    );
  } else {
    out.set('embed', tf.tensor2d(await read('model.encoder.embed_tokens.weight', [vs, d]), [vs, d]));
    out.set('embed.target', tf.tensor2d(await read('model.decoder.embed_tokens.weight', [vt, d]), [vt, d]));
  }
  if (o.tie_word_embeddings === false) {
    const w = tf.tensor2d(await read('lm_head.weight', [vt, d]), [vt, d]);
    out.set('output', w.transpose());
    w.dispose();
  }
  if (hf.family === 'marian') out.set('output.bias', tf.tensor1d(await read('final_logits_bias', [1, vt])));
  const moe = hf.family === 'nllb_moe';
  const dFF = cfg.dFF;
  // NLLB-MoE scales expert outputs by 1 - moe_token_dropout at inference; folded into fc2.
  const expertScale = moe ? 1 - ((o.moe_token_dropout as number | undefined) ?? 0.2) : 1;
  for (const c of ['encoder', 'decoder'] as Component[]) {
    const layers = c === 'encoder' ? cfg.encoderLayers : cfg.decoderLayers;
    for (let i = 0; i < layers; i++) {
      const from = `model.${c}.layers.${i}`;
      const to = `${c}.layers.${i}`;
      await attention(`${to}.selfAttn`, `${from}.self_attn`);
      await norm(`${to}.selfAttn.ln`, `${from}.self_attn_layer_norm`);
      if (c === 'decoder') {
        const cross = moe ? 'cross_attention' : 'encoder_attn';
        await attention(`${to}.crossAttn`, `${from}.${cross}`);
        await norm(`${to}.crossAttn.ln`, `${from}.${cross}_layer_norm`);
      }
      await norm(`${to}.ffn.ln`, `${from}.${moe ? 'ff_layer_norm' : 'final_layer_norm'}`);
      const sparse = moe && (i + 1) % cfg.moe.every === 0;
      if (sparse) {
        const g = tf.tensor2d(await read(`${from}.ffn.router.classifier.weight`, [cfg.moe.numExperts, d]), [
          cfg.moe.numExperts,
          d,
        ]);
        out.set(`${to}.ffn.gate`, g.transpose());
        g.dispose();
        for (let e = 0; e < cfg.moe.numExperts; e++) {
          await linear(`${to}.ffn.experts.${e}.wi`, `${from}.ffn.experts.expert_${e}.fc1`, d, dFF);
          await linear(`${to}.ffn.experts.${e}.wo`, `${from}.ffn.experts.expert_${e}.fc2`, dFF, d, expertScale);
        }
      } else {
        const ffn = moe ? `${from}.ffn` : from;
        await linear(`${to}.ffn.wi`, `${ffn}.fc1`, d, dFF);
        await linear(`${to}.ffn.wo`, `${ffn}.fc2`, dFF, d);
      }
    }
    if (hf.family !== 'marian') await norm(`${c}.lnF`, `model.${c}.layer_norm`);
  }
  return out;
}
