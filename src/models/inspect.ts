// Parameter and byte counts of a checkpoint and of every sub-network it can be cut into,
// computed from shapes alone (nothing is loaded).
import type { CheckpointReader } from './checkpoint.ts';
import { type Component, type ModelConfig, type TensorShapes, COMPONENTS, parsePair, tensorComponent, tensorShapes } from './config.ts';
import { subnetworkConfig, subnetworkTasks } from './extract.ts';

export interface ParamCounts {
  total: number;
  encoder: number;
  decoder: number;
  embeddings: number;
}

export interface SubnetworkSize {
  /** The task of each task-routed component (with Token/Target: {decoder: "de"}). */
  tasks: Partial<Record<Component, string>>;
  pairs: string[];
  params: ParamCounts;
  /** float32 bytes on the device. */
  bytes: number;
}

export interface ModelReport {
  routing: ModelConfig['routing'];
  moe: ModelConfig['moe'];
  extracted?: ModelConfig['extracted'];
  dtype: string;
  params: ParamCounts;
  /** Bytes of the weight shards on disk. */
  bytes: number;
  subnetworks: SubnetworkSize[];
}

export function countParams(shapes: TensorShapes): ParamCounts {
  const counts: ParamCounts = { total: 0, encoder: 0, decoder: 0, embeddings: 0 };
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    counts[tensorComponent(name)] += n;
    counts.total += n;
  }
  return counts;
}

export function inspectModel(reader: CheckpointReader): ModelReport {
  const cfg = reader.config;
  let bytes = 0;
  for (const name of reader.shapes.keys()) bytes += reader.storedBytes(name);
  // Pairs that map to the same tasks share one sub-network.
  const byTasks = new Map<string, SubnetworkSize>();
  for (const pair of cfg.pairs) {
    const dir = parsePair(pair);
    const tasks = subnetworkTasks(cfg, dir);
    const key = COMPONENTS.map((c) => tasks[c] ?? '').join('|');
    const existing = byTasks.get(key);
    if (existing !== undefined) {
      existing.pairs.push(pair);
      continue;
    }
    const params = countParams(tensorShapes(subnetworkConfig(cfg, dir)));
    byTasks.set(key, { tasks, pairs: [pair], params, bytes: params.total * 4 });
  }
  return {
    routing: cfg.routing,
    moe: cfg.moe,
    ...(cfg.extracted ? { extracted: cfg.extracted } : {}),
    dtype: reader.dtype,
    params: countParams(reader.shapes),
    bytes,
    subnetworks: [...byTasks.values()],
  };
}
