// What imported models fix around decoding: a forced first output token (M2M-100 and NLLB's target
// language) and token ids never output (Marian's pad, from its bad_words_ids).
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './config.ts';
import type { Direction } from './transformer.ts';

/** The tokens a direction's output must start with: the target's language token (M2M-100, NLLB), not counted as output. */
export function forcedPrefix(cfg: ModelConfig, dir: Direction): number[] {
  return cfg.prompt === 'language-tokens' ? [cfg.languageTokens![dir.target]] : [];
}

// logits: [N, V] -> the same with the config's suppressed ids (Marian's pad) at -1e9; null when none
export function suppressed(cfg: ModelConfig, logits: tf.Tensor2D): tf.Tensor2D | null {
  if (!cfg.suppressIds?.length) return null;
  const mask = new Float32Array(logits.shape[1]);
  for (const id of cfg.suppressIds) mask[id] = -1e9;
  return logits.add(tf.tensor1d(mask)) as tf.Tensor2D;
}

