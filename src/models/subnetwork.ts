// Which sub-network a translation direction needs, decided here and nowhere else: the cache keys its
// entries by it, and the engine pool deals pairs to workers by it, so pairs that run on the same
// weights share one worker and one cache entry.
import { type Component, type ModelConfig, hasExperts, isTaskRouting, taskKey } from './config.ts';
import type { Direction } from './transformer.ts';

export interface Subnetwork {
  /** The task each component is cut out for; undefined where one component serves every direction. */
  readonly encoder: string | undefined;
  readonly decoder: string | undefined;
  /** Equal for directions that run on the same weights; an identity, never parsed. */
  readonly id: string;
  /** The cache keys of its three entries: embeddings, encoder, decoder. */
  readonly entries: readonly [string, string, string];
}

/** The cache key of the embeddings, which every direction shares. */
export const EMBEDDINGS_KEY = 'embeddings';

/**
 * The sub-network serving `dir`. A component is cut out per task only when it still holds experts
 * and is task-routed; otherwise (token, sentence, dense, or already extracted) it is shared.
 */
export function subnetworkOf(cfg: ModelConfig, dir: Direction): Subnetwork {
  const taskOf = (c: Component) => (hasExperts(cfg, c) && isTaskRouting(cfg.routing[c]) ? taskKey(cfg.routing[c], dir.source, dir.target) : undefined);
  const encoder = taskOf('encoder');
  const decoder = taskOf('decoder');
  const entries = [EMBEDDINGS_KEY, componentKey('encoder', encoder), componentKey('decoder', decoder)] as const;
  return { encoder, decoder, id: `${entries[1]} ${entries[2]}`, entries };
}

/** The cache key of component c: `c:task` when cut out per task (`decoder:de`, `decoder:en-de`), `c:*` when shared. */
export function componentKey(c: Component, task: string | undefined): string {
  return `${c}:${task ?? '*'}`;
}
