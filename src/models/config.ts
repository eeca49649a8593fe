// The model's config.json: its fields, their validation, and what follows from them
// (which layers hold experts, which task a request belongs to, every tensor's name and shape).

export const ROUTINGS = ['dense', 'token', 'sentence', 'target', 'pair'] as const;
export type Routing = (typeof ROUTINGS)[number];
export type Component = 'encoder' | 'decoder';
export const COMPONENTS: readonly Component[] = ['encoder', 'decoder'];

export interface MoeConfig {
  numExperts: number;
  topK: number;
  /** Every `every`-th layer (the 2nd, 4th, ... for every = 2) has a Mixture-of-Experts FFN. */
  every: number;
}

/**
 * How a model trained elsewhere (Marian, M2M-100, NLLB) differs from taskmoe's own Transformer.
 * Every field is optional in config.json; archOf() fills in taskmoe's behaviour, the default.
 */
export interface Architecture {
  /** 'sinusoidal': sin | cos halves at 10000^(2i/d) (taskmoe, Marian); 'fairseq': at 10000^(i/(d/2-1)) (M2M-100, NLLB); 'learned': a stored table. */
  positions: 'sinusoidal' | 'fairseq' | 'learned';
  /** Row of the position table that position 0 reads (M2M-100/NLLB: padding_idx + 1 = 2). */
  positionOffset: number;
  /** Token embeddings are multiplied by sqrt(dModel). */
  scaleEmbedding: boolean;
  /** 'pre': x + f(LN(x)) and a final LN per stack; 'post': LN(x + f(x)), no final LN (Marian). */
  norm: 'pre' | 'post';
  activation: 'relu' | 'gelu' | 'swish';
  /** Every projection and FFN matrix has a bias vector. */
  bias: boolean;
  /** The output projection is the (target) embedding transposed; false: a separate "output" tensor. */
  tiedOutput: boolean;
  /** A bias added to the logits ("output.bias", Marian's final_logits_bias). */
  logitsBias: boolean;
  layerNormEps: number;
}

export const DEFAULT_ARCHITECTURE: Architecture = {
  positions: 'sinusoidal', positionOffset: 0, scaleEmbedding: true, norm: 'pre', activation: 'relu',
  bias: false, tiedOutput: true, logitsBias: false, layerNormEps: 1e-5,
};

/**
 * How a source and the decoder's first tokens name the languages: 'target-tag' (taskmoe: the source
 * starts with <2xx> of the target), 'language-tokens' (M2M-100, NLLB: the source starts with its
 * own language's token and the decoder's first output is forced to the target's), 'none' (Marian:
 * one pair per model).
 */
export type Prompt = 'target-tag' | 'language-tokens' | 'none';

/** Token ids a model trained elsewhere fixes in its config rather than in its SentencePiece model. */
export interface SpecialIds {
  /** The decoder's first input (Marian: pad; M2M-100/NLLB: eos). */
  decoderStart: number;
  eos: number;
  pad: number;
  unk: number;
}

export interface ModelConfig {
  vocabSize: number;
  dModel: number;
  numHeads: number;
  dFF: number;
  encoderLayers: number;
  decoderLayers: number;
  moe: MoeConfig;
  routing: Record<Component, Routing>;
  languages: string[];
  /** Directions as "src-tgt". */
  pairs: string[];
  /** Longest source or target, in tokens (including the language tag and EOS). */
  maxLength: number;
  /** SentencePiece model file, relative to the checkpoint directory. */
  tokenizer: string;
  /**
   * Set on an extracted sub-network: the task each task-routed component was cut for. Such a
   * component is a plain dense stack whose MoE layers have FFN width topK * dFF.
   */
  extracted?: Partial<Record<Component, string>>;
  /** Architecture variants (imported models); absent fields are taskmoe's defaults. */
  arch?: Partial<Architecture>;
  /** Set when the target side has its own vocabulary (tensor "embed.target"); vocabSize is the source's. */
  targetVocabSize?: number;
  /** SentencePiece model of the target side, when it has its own (Marian's target.spm). */
  targetTokenizer?: string;
  /** JSON {piece: id} mapping SentencePiece pieces to model ids (Marian, M2M-100, NLLB); absent: ids are the SentencePiece ids. */
  vocab?: string;
  /** The target side's own {piece: id} mapping. */
  targetVocab?: string;
  /** Default 'target-tag'. */
  prompt?: Prompt;
  /** With prompt 'language-tokens': each language's token id. */
  languageTokens?: Record<string, number>;
  /** With a vocab mapping: the special ids (otherwise they come from the SentencePiece model). */
  specialIds?: SpecialIds;
  /** Ids decoding never outputs (Marian's bad_words_ids: its pad). */
  suppressIds?: number[];
}

export function archOf(cfg: ModelConfig): Architecture {
  return { ...DEFAULT_ARCHITECTURE, ...cfg.arch };
}

export function targetVocabSize(cfg: ModelConfig): number {
  return cfg.targetVocabSize ?? cfg.vocabSize;
}

export class ConfigError extends Error {}

export type TensorShapes = Map<string, number[]>;

export function isTaskRouting(r: Routing): r is 'target' | 'pair' {
  return r === 'target' || r === 'pair';
}

export function numLayers(cfg: ModelConfig, c: Component): number {
  return c === 'encoder' ? cfg.encoderLayers : cfg.decoderLayers;
}

/** Whether layer `i` of component `c` routes its FFN over experts (before any extraction). */
export function isMoeLayer(cfg: ModelConfig, c: Component, i: number): boolean {
  return cfg.routing[c] !== 'dense' && (i + 1) % cfg.moe.every === 0;
}

/** Whether the component still holds experts and a gate (not dense, not extracted). */
export function hasExperts(cfg: ModelConfig, c: Component): boolean {
  return cfg.routing[c] !== 'dense' && cfg.extracted?.[c] === undefined;
}

export function pairKey(source: string, target: string): string {
  return `${source}-${target}`;
}

/** "en-de" -> {source: "en", target: "de"}; the inverse of pairKey for a pair from a valid config. */
export function parsePair(pair: string): { source: string; target: string } {
  const [source, target] = pair.split('-');
  return { source, target };
}

/** The task a translation source→target belongs to under a routing; undefined when routing has no task. */
export function taskKey(routing: Routing, source: string, target: string): string | undefined {
  if (routing === 'target') return target;
  if (routing === 'pair') return pairKey(source, target);
  return undefined;
}

/** All tasks of a task-routed component, in the order of its task-embedding rows. */
export function taskList(cfg: ModelConfig, c: Component): string[] {
  const r = cfg.routing[c];
  if (r === 'target') return cfg.languages;
  if (r === 'pair') return cfg.pairs;
  return [];
}

/** The FFN width of a layer: topK * dFF for an extracted MoE layer (its k experts folded into one). */
export function ffnWidth(cfg: ModelConfig, c: Component, i: number): number {
  return isMoeLayer(cfg, c, i) && cfg.extracted?.[c] !== undefined ? cfg.moe.topK * cfg.dFF : cfg.dFF;
}

/**
 * Every tensor the checkpoint must hold, with its shape. Weights are stored as [in, out] so that
 * every projection is an untransposed 2-D matMul.
 */
export function tensorShapes(cfg: ModelConfig): TensorShapes {
  const { dModel: d, dFF, vocabSize } = cfg;
  const arch = archOf(cfg);
  const vt = targetVocabSize(cfg);
  const shapes: TensorShapes = new Map();
  shapes.set('embed', [vocabSize, d]);
  if (cfg.targetVocabSize !== undefined) shapes.set('embed.target', [vt, d]);
  if (arch.positions === 'learned') shapes.set('embed.positions', [cfg.maxLength + arch.positionOffset, d]);
  if (!arch.tiedOutput) shapes.set('output', [d, vt]);
  if (arch.logitsBias) shapes.set('output.bias', [vt]);
  // a projection [in, out] and, with biases, its bias [out]
  const proj = (name: string, shape: [number, number]): void => {
    shapes.set(name, shape);
    if (arch.bias) shapes.set(biasName(name), [shape[1]]);
  };
  for (const c of COMPONENTS) {
    const attention = (p: string): void => {
      shapes.set(`${p}.ln.g`, [d]);
      shapes.set(`${p}.ln.b`, [d]);
      proj(`${p}.wq`, [d, d]);
      proj(`${p}.wkv`, [d, 2 * d]);
      proj(`${p}.wo`, [d, d]);
    };
    if (hasExperts(cfg, c) && isTaskRouting(cfg.routing[c])) {
      shapes.set(`${c}.taskEmbed`, [taskList(cfg, c).length, d]);
    }
    for (let i = 0; i < numLayers(cfg, c); i++) {
      const l = `${c}.layers.${i}`;
      attention(`${l}.selfAttn`);
      if (c === 'decoder') attention(`${l}.crossAttn`);
      shapes.set(`${l}.ffn.ln.g`, [d]);
      shapes.set(`${l}.ffn.ln.b`, [d]);
      if (isMoeLayer(cfg, c, i) && hasExperts(cfg, c)) {
        shapes.set(`${l}.ffn.gate`, [d, cfg.moe.numExperts]);
        for (let e = 0; e < cfg.moe.numExperts; e++) {
          proj(`${l}.ffn.experts.${e}.wi`, [d, dFF]);
          proj(`${l}.ffn.experts.${e}.wo`, [dFF, d]);
        }
      } else {
        const w = ffnWidth(cfg, c, i);
        proj(`${l}.ffn.wi`, [d, w]);
        proj(`${l}.ffn.wo`, [w, d]);
      }
    }
    if (arch.norm === 'pre') {
      shapes.set(`${c}.lnF.g`, [d]);
      shapes.set(`${c}.lnF.b`, [d]);
    }
  }
  return shapes;
}

/** The bias of a projection: "….wq" -> "….bq", "….ffn.wi" -> "….ffn.bi". */
export function biasName(weightName: string): string {
  return weightName.replace(/\.w(\w*)$/, '.b$1');
}

/** Which part of the model a tensor belongs to, for parameter counts. */
export function tensorComponent(name: string): Component | 'embeddings' {
  if (name === 'embed' || name.startsWith('embed.') || name.startsWith('output')) return 'embeddings';
  return name.startsWith('encoder.') ? 'encoder' : 'decoder';
}

/** An ISO 639 code, or NLLB's code with its script ("deu_Latn"). */
const LANGUAGE_CODE = /^[a-z]{2,3}(_[A-Z][a-z]{3})?$/;

const positiveInt = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0;

/** Checks a parsed config.json; `where` names the file in error messages. */
export function parseConfig(raw: unknown, where = 'config.json'): ModelConfig {
  const fail = (msg: string): never => {
    throw new ConfigError(`${where}: ${msg}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('expected a JSON object');
  const o = raw as Record<string, unknown>;
  for (const k of ['vocabSize', 'dModel', 'numHeads', 'dFF', 'encoderLayers', 'decoderLayers', 'maxLength']) {
    if (!positiveInt(o[k])) fail(`"${k}" must be a positive integer, got ${JSON.stringify(o[k])}`);
  }
  if ((o.dModel as number) % (o.numHeads as number) !== 0) fail(`"dModel" (${o.dModel}) must be divisible by "numHeads" (${o.numHeads})`);
  const moe = o.moe as Record<string, unknown> | undefined;
  if (typeof moe !== 'object' || moe === null) fail('"moe" must be an object {numExperts, topK, every}');
  for (const k of ['numExperts', 'topK', 'every']) {
    if (!positiveInt(moe![k])) fail(`"moe.${k}" must be a positive integer, got ${JSON.stringify(moe![k])}`);
  }
  if ((moe!.topK as number) > (moe!.numExperts as number)) fail(`"moe.topK" (${moe!.topK}) exceeds "moe.numExperts" (${moe!.numExperts})`);
  const routing = o.routing as Record<string, unknown> | undefined;
  if (typeof routing !== 'object' || routing === null) fail('"routing" must be an object {encoder, decoder}');
  for (const c of COMPONENTS) {
    if (!ROUTINGS.includes(routing![c] as Routing)) {
      fail(`unknown routing kind ${JSON.stringify(routing![c])} for "routing.${c}"; expected one of ${ROUTINGS.join(', ')}`);
    }
  }
  const languages = o.languages;
  if (!Array.isArray(languages) || languages.length === 0 || !languages.every((l) => typeof l === 'string' && LANGUAGE_CODE.test(l))) {
    fail('"languages" must be a non-empty array of language codes such as "en" (or NLLB\'s "deu_Latn")');
  }
  if (new Set(languages as string[]).size !== (languages as string[]).length) fail('"languages" has duplicates');
  const pairs = o.pairs;
  if (!Array.isArray(pairs) || pairs.length === 0 || !pairs.every((p) => typeof p === 'string')) fail('"pairs" must be a non-empty array such as ["en-de"]');
  for (const p of pairs as string[]) {
    const [s, t, extra] = p.split('-');
    if (extra !== undefined || !(languages as string[]).includes(s) || !(languages as string[]).includes(t) || s === t) {
      fail(`pair "${p}" must be "src-tgt" with two different languages from "languages"`);
    }
  }
  const tokenizer = o.tokenizer ?? 'tokenizer.model';
  if (typeof tokenizer !== 'string' || tokenizer.includes('..')) fail('"tokenizer" must be a file name inside the checkpoint');
  const cfg: ModelConfig = {
    vocabSize: o.vocabSize as number,
    dModel: o.dModel as number,
    numHeads: o.numHeads as number,
    dFF: o.dFF as number,
    encoderLayers: o.encoderLayers as number,
    decoderLayers: o.decoderLayers as number,
    moe: { numExperts: moe!.numExperts as number, topK: moe!.topK as number, every: moe!.every as number },
    routing: { encoder: routing!.encoder as Routing, decoder: routing!.decoder as Routing },
    languages: languages as string[],
    pairs: pairs as string[],
    maxLength: o.maxLength as number,
    tokenizer: tokenizer as string,
  };
  if (o.extracted !== undefined) {
    const ex = o.extracted as Record<string, unknown>;
    if (typeof ex !== 'object' || ex === null) fail('"extracted" must be an object');
    cfg.extracted = {};
    for (const c of COMPONENTS) {
      if (ex[c] === undefined) continue;
      if (!isTaskRouting(cfg.routing[c])) fail(`"extracted.${c}" is set but routing.${c} is "${cfg.routing[c]}", not a task routing`);
      if (!taskList(cfg, c).includes(ex[c] as string)) fail(`"extracted.${c}" names unknown task ${JSON.stringify(ex[c])}`);
      cfg.extracted[c] = ex[c] as string;
    }
  }
  parseImportFields(o, cfg, fail);
  return cfg;
}

const ARCH_CHOICES: { [K in keyof Architecture]: readonly unknown[] | 'boolean' | 'number' } = {
  positions: ['sinusoidal', 'fairseq', 'learned'], positionOffset: 'number', scaleEmbedding: 'boolean', norm: ['pre', 'post'],
  activation: ['relu', 'gelu', 'swish'], bias: 'boolean', tiedOutput: 'boolean', logitsBias: 'boolean', layerNormEps: 'number',
};
const PROMPTS: readonly Prompt[] = ['target-tag', 'language-tokens', 'none'];

/** The fields models imported from elsewhere add (arch, separate vocabularies, prompts), checked into cfg. */
function parseImportFields(o: Record<string, unknown>, cfg: ModelConfig, fail: (msg: string) => never): void {
  if (o.arch !== undefined) {
    const arch = o.arch as Record<string, unknown>;
    if (typeof arch !== 'object' || arch === null || Array.isArray(arch)) fail('"arch" must be an object');
    for (const [k, v] of Object.entries(arch)) {
      const choice = ARCH_CHOICES[k as keyof Architecture];
      if (choice === undefined) fail(`unknown field "arch.${k}"; known: ${Object.keys(ARCH_CHOICES).join(', ')}`);
      const ok = Array.isArray(choice) ? choice.includes(v) : choice === 'number' ? typeof v === 'number' && Number.isFinite(v) && v >= 0 : typeof v === 'boolean';
      if (!ok) fail(`"arch.${k}" must be ${Array.isArray(choice) ? `one of ${choice.join(', ')}` : `a ${choice}`}, got ${JSON.stringify(v)}`);
    }
    cfg.arch = arch as Partial<Architecture>;
  }
  if (o.targetVocabSize !== undefined) {
    if (!positiveInt(o.targetVocabSize)) fail(`"targetVocabSize" must be a positive integer, got ${JSON.stringify(o.targetVocabSize)}`);
    cfg.targetVocabSize = o.targetVocabSize as number;
  }
  for (const k of ['targetTokenizer', 'vocab', 'targetVocab'] as const) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== 'string' || (o[k] as string).includes('..') || (o[k] as string).includes('/')) fail(`"${k}" must be a file name inside the checkpoint`);
    cfg[k] = o[k] as string;
  }
  if (o.prompt !== undefined) {
    if (!PROMPTS.includes(o.prompt as Prompt)) fail(`"prompt" must be one of ${PROMPTS.join(', ')}, got ${JSON.stringify(o.prompt)}`);
    cfg.prompt = o.prompt as Prompt;
  }
  const vocabLimit = Math.max(cfg.vocabSize, targetVocabSize(cfg));
  const isId = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < vocabLimit;
  if (o.languageTokens !== undefined) {
    const lt = o.languageTokens as Record<string, unknown>;
    if (typeof lt !== 'object' || lt === null) fail('"languageTokens" must be an object {language: token id}');
    for (const l of cfg.languages) if (!isId(lt[l])) fail(`"languageTokens.${l}" must be a token id below ${vocabLimit}, got ${JSON.stringify(lt[l])}`);
    cfg.languageTokens = Object.fromEntries(cfg.languages.map((l) => [l, lt[l] as number]));
  }
  if (cfg.prompt === 'language-tokens' && cfg.languageTokens === undefined) fail('"prompt": "language-tokens" needs "languageTokens"');
  if (o.specialIds !== undefined) {
    const sp = o.specialIds as Record<string, unknown>;
    if (typeof sp !== 'object' || sp === null) fail('"specialIds" must be an object {decoderStart, eos, pad, unk}');
    for (const k of ['decoderStart', 'eos', 'pad', 'unk']) if (!isId(sp[k])) fail(`"specialIds.${k}" must be a token id below ${vocabLimit}, got ${JSON.stringify(sp[k])}`);
    cfg.specialIds = { decoderStart: sp.decoderStart as number, eos: sp.eos as number, pad: sp.pad as number, unk: sp.unk as number };
  }
  if (o.suppressIds !== undefined) {
    if (!Array.isArray(o.suppressIds) || !o.suppressIds.every(isId)) fail('"suppressIds" must be an array of token ids');
    cfg.suppressIds = o.suppressIds as number[];
  }
  if (cfg.vocab !== undefined && cfg.specialIds === undefined) fail('"vocab" needs "specialIds"');
}
