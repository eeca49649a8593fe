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
  const shapes: TensorShapes = new Map();
  shapes.set('embed', [vocabSize, d]);
  for (const c of COMPONENTS) {
    const attention = (p: string): void => {
      shapes.set(`${p}.ln.g`, [d]);
      shapes.set(`${p}.ln.b`, [d]);
      shapes.set(`${p}.wq`, [d, d]);
      shapes.set(`${p}.wkv`, [d, 2 * d]);
      shapes.set(`${p}.wo`, [d, d]);
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
          shapes.set(`${l}.ffn.experts.${e}.wi`, [d, dFF]);
          shapes.set(`${l}.ffn.experts.${e}.wo`, [dFF, d]);
        }
      } else {
        const w = ffnWidth(cfg, c, i);
        shapes.set(`${l}.ffn.wi`, [d, w]);
        shapes.set(`${l}.ffn.wo`, [w, d]);
      }
    }
    shapes.set(`${c}.lnF.g`, [d]);
    shapes.set(`${c}.lnF.b`, [d]);
  }
  return shapes;
}

/** Which part of the model a tensor belongs to, for parameter counts. */
export function tensorComponent(name: string): Component | 'embeddings' {
  if (name === 'embed') return 'embeddings';
  return name.startsWith('encoder.') ? 'encoder' : 'decoder';
}

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
  if (!Array.isArray(languages) || languages.length === 0 || !languages.every((l) => typeof l === 'string' && /^[a-z]{2,3}$/.test(l))) {
    fail('"languages" must be a non-empty array of language codes such as "en"');
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
  return cfg;
}
