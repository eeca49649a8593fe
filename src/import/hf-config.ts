// A Hugging Face config.json as taskmoe sees it: which family it is, whether every field is one the
// import understands (with a value taskmoe computes the same way), and the taskmoe config fields it
// implies. Anything else is refused by name: a silently wrong model is worse than none.
import type { Architecture } from '../models/config.ts';
import { ImportError } from './safetensors.ts';

export type Family = 'marian' | 'm2m_100' | 'nllb_moe';

export const ARCHITECTURES: Record<string, Family> = {
  MarianMTModel: 'marian',
  M2M100ForConditionalGeneration: 'm2m_100',
  NllbMoeForConditionalGeneration: 'nllb_moe',
};

// Fields with no effect on inference (training, bookkeeping, generation defaults taskmoe sets itself).
const IGNORED = new Set([
  '_name_or_path',
  'architectures',
  'model_type',
  'transformers_version',
  'dtype',
  'torch_dtype',
  'id2label',
  'label2id',
  'num_labels',
  'problem_type',
  'return_dict',
  'output_attentions',
  'output_hidden_states',
  'chunk_size_feed_forward',
  'is_encoder_decoder',
  'is_decoder',
  'use_cache',
  'init_std',
  'init_xavier_std',
  'dropout',
  'attention_dropout',
  'activation_dropout',
  'encoder_layerdrop',
  'decoder_layerdrop',
  'classifier_dropout',
  'classif_dropout',
  'gradient_checkpointing',
  'num_hidden_layers',
  'bos_token_id',
  'max_length',
  'num_beams',
  'length_penalty',
  'early_stopping',
  'no_repeat_ngram_size',
  'forced_eos_token_id',
  'forced_bos_token_id',
  'tokenizer_class',
  'output_router_logits',
  'router_z_loss_coef',
  'router_aux_loss_coef',
  'expert_capacity',
  'moe_eval_capacity_token_fraction',
  'batch_prioritized_routing',
  'normalize_router_prob_before_dropping',
  'router_dtype',
  'router_ignore_padding_tokens',
  'moe_token_dropout',
  'max_new_tokens',
  'min_length',
  'do_sample',
  'prefix',
  'task_specific_params',
  // older configs (Transformers 2-4) carry these; none changes the forward pass
  '_num_labels',
  'output_past',
  'use_bfloat16',
  'torchscript',
  'pruned_heads',
  'temperature',
  'top_k',
  'top_p',
  'repetition_penalty',
  'num_return_sequences',
  'num_beam_groups',
  'diversity_penalty',
  'encoder_no_repeat_ngram_size',
]);

// Fields read into the taskmoe config.
const READ = new Set([
  'vocab_size',
  'decoder_vocab_size',
  'd_model',
  'encoder_layers',
  'decoder_layers',
  'encoder_attention_heads',
  'decoder_attention_heads',
  'encoder_ffn_dim',
  'decoder_ffn_dim',
  'activation_function',
  'max_position_embeddings',
  'pad_token_id',
  'eos_token_id',
  'decoder_start_token_id',
  'scale_embedding',
  'share_encoder_decoder_embeddings',
  'tie_word_embeddings',
  'bad_words_ids',
  'num_experts',
  'encoder_sparse_step',
  'decoder_sparse_step',
  'router_bias',
  'second_expert_policy',
]);

// Fields of older BART-style Marian configs, accepted only with the value Marian computes with.
const FIXED: Record<string, unknown> = {
  normalize_before: false,
  add_final_layer_norm: false,
  normalize_embedding: false,
  static_position_embeddings: true,
  add_bias_logits: false,
  extra_pos_embeddings: undefined,
};

const ACTIVATIONS: Record<string, Architecture['activation']> = {
  relu: 'relu',
  gelu: 'gelu',
  swish: 'swish',
  silu: 'swish',
};

export interface HfConfig {
  family: Family;
  raw: Record<string, unknown>;
}

/** Checks a parsed config.json: a supported architecture, and no field the import does not understand. */
export function readHfConfig(raw: unknown, where: string): HfConfig {
  if (typeof raw !== 'object' || raw === null) throw new ImportError(`${where}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  const archs = (o.architectures as string[] | undefined) ?? [];
  const family = archs.map((a) => ARCHITECTURES[a]).find((f) => f !== undefined);
  if (family === undefined) {
    throw new ImportError(
      `${where}: unsupported architecture ${JSON.stringify(archs.length ? archs : o.model_type)}; taskmoe imports ${Object.keys(ARCHITECTURES).join(', ')}`,
    );
  }
  for (const [k, v] of Object.entries(o)) {
    if (IGNORED.has(k) || READ.has(k)) continue;
    if (k in FIXED) {
      if (FIXED[k] !== undefined && v !== FIXED[k])
        throw new ImportError(
          `${where}: "${k}": ${JSON.stringify(v)} is not supported (taskmoe computes as ${k} = ${FIXED[k]})`,
        );
      continue;
    }
    throw new ImportError(
      `${where}: unknown config field "${k}" (${JSON.stringify(v)}); taskmoe refuses what it cannot check it computes the same way`,
    );
  }
  const int = (k: string) => {
    if (!Number.isInteger(o[k]) || (o[k] as number) < 0)
      throw new ImportError(`${where}: "${k}" must be a non-negative integer, got ${JSON.stringify(o[k])}`);
    return o[k] as number;
  };
  for (const [a, b] of [
    ['encoder_attention_heads', 'decoder_attention_heads'],
    ['encoder_ffn_dim', 'decoder_ffn_dim'],
  ]) {
    if (int(a) !== int(b))
      throw new ImportError(
        `${where}: "${a}" (${o[a]}) differs from "${b}" (${o[b]}); taskmoe models use one value for both`,
      );
  }
  if (ACTIVATIONS[o.activation_function as string] === undefined) {
    throw new ImportError(
      `${where}: activation_function ${JSON.stringify(o.activation_function)} is not supported (relu, gelu, swish/silu)`,
    );
  }
  if (family === 'nllb_moe') {
    if (int('encoder_sparse_step') !== int('decoder_sparse_step'))
      throw new ImportError(
        `${where}: encoder_sparse_step and decoder_sparse_step differ; taskmoe uses one "moe.every"`,
      );
    if (o.router_bias === true)
      throw new ImportError(`${where}: "router_bias": true is not supported (taskmoe's gate has no bias)`);
    if ((o.second_expert_policy ?? 'all') !== 'all')
      throw new ImportError(
        `${where}: "second_expert_policy": ${JSON.stringify(o.second_expert_policy)} is not supported (only "all", the deterministic one)`,
      );
  }
  if (o.scale_embedding !== undefined && typeof o.scale_embedding !== 'boolean')
    throw new ImportError(`${where}: "scale_embedding" must be a boolean`);
  return { family, raw: o };
}

/** The taskmoe architecture fields a Hugging Face config implies. */
export function architectureOf(c: HfConfig): Partial<Architecture> {
  const o = c.raw;
  const marian = c.family === 'marian';
  return {
    positions: marian ? 'sinusoidal' : 'fairseq',
    positionOffset: marian ? 0 : (o.pad_token_id as number) + 1,
    scaleEmbedding: (o.scale_embedding as boolean | undefined) ?? !marian, // Transformers' defaults: Marian false, the others true
    norm: marian ? 'post' : 'pre',
    activation: ACTIVATIONS[o.activation_function as string],
    bias: true,
    tiedOutput: o.tie_word_embeddings !== false,
    logitsBias: marian,
  };
}
