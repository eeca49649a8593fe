// Messages between the server thread and its engine workers.
import type { WithId } from '../util/rpc.ts';
import type { Translation } from '../translator/index.ts';
import type { BatchKey } from './request.ts';

export interface EngineWorkerData {
  modelDir: string;
  cacheBytes: number;
  /** Sentences a running batch may hold before further batches of its pair wait to join. */
  maxRows: number;
  /** Pairs to load before the worker reports ready. */
  warmPairs: string[];
  /** Intra-op threads of the engine's kernels (ONNX Runtime sessions); 1 = one core per worker. */
  intraOpThreads: number;
}

/** The pool stops a worker by terminating its thread. A cancelled batch's sentences are dropped unanswered. */
export type ToWorker = WithId<TranslateBatch> | WithId<LoadSubnetwork> | { type: 'cancel'; id: number };

/** A batch to translate; it travels with the id its result or error answers (util/rpc.ts). */
export type TranslateBatch = { type: 'translate'; key: BatchKey; sources: number[][] };

/** Load the sub-network of `pair` into the cache (a replica), answered by 'loaded' or 'error'. */
export type LoadSubnetwork = { type: 'load'; pair: string };

export interface CacheSnapshot {
  entries: number;
  bytes: number;
  hits: number;
  misses: number;
  evictions: number;
  /** Device bytes of each cached entry, by key (models/subnetwork.ts). */
  entryBytes: Record<string, number>;
}

export type FromWorker =
  | { type: 'ready'; cache: CacheSnapshot; tensors: number; backend: string }
  | { type: 'fatal'; message: string }
  | {
      type: 'result';
      id: number;
      translations: Translation[];
      durationMs: number;
      cache: CacheSnapshot;
      tensors: number;
    }
  | { type: 'loaded'; id: number; cache: CacheSnapshot; tensors: number }
  | { type: 'error'; id: number; message: string; input: boolean }
  | { type: 'cache'; event: 'hit' | 'miss' | 'evict' | 'load'; seconds?: number };
