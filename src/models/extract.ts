// Sub-network extraction. A component routed by target or pair sends every token of a task to the
// same top-k experts with the same gate values, so for one task each MoE layer is a fixed weighted
// sum of k FFNs; concatenating their input projections and scaling each output projection by its
// gate folds them into one dense FFN of width k * dFF with identical outputs.
import * as tf from '@tensorflow/tfjs';
import type { TensorSource } from './checkpoint.ts';
import {
  type Component, type ModelConfig, COMPONENTS, hasExperts, isMoeLayer, isTaskRouting, numLayers, taskKey, taskList, tensorComponent, parsePair,
} from './config.ts';
import type { Weights } from './layers.ts';
import { topKGating } from './moe.ts';
import type { Direction } from './transformer.ts';

/** The task each task-routed component serves `dir` with; other components are shared by every task. */
export function subnetworkTasks(cfg: ModelConfig, dir: Direction): Partial<Record<Component, string>> {
  const tasks: Partial<Record<Component, string>> = {};
  for (const c of COMPONENTS) {
    if (isTaskRouting(cfg.routing[c])) tasks[c] = taskKey(cfg.routing[c], dir.source, dir.target);
  }
  return tasks;
}

/**
 * The config of the sub-network serving `dir`: task-routed components extracted, and `pairs`
 * narrowed to the directions that map to the same tasks (with Token/Target: every pair into the target).
 */
export function subnetworkConfig(cfg: ModelConfig, dir: Direction): ModelConfig {
  const tasks = subnetworkTasks(cfg, dir);
  const pairs = cfg.pairs.filter((p) => {
    const { source, target } = parsePair(p);
    return COMPONENTS.every((c) => tasks[c] === undefined || taskKey(cfg.routing[c], source, target) === tasks[c]);
  });
  return { ...cfg, pairs, extracted: { ...cfg.extracted, ...tasks } };
}

/** The experts a task's gate picks in each MoE layer, with their renormalised gate values. */
export async function taskExperts(reader: TensorSource, c: Component, task: string): Promise<{ layer: number; experts: number[]; gates: number[] }[]> {
  const cfg = reader.config;
  const row = taskList(cfg, c).indexOf(task);
  if (row < 0) throw new Error(`${c} has no task "${task}"; its tasks are ${taskList(cfg, c).join(', ')}`);
  const layers = Array.from({ length: numLayers(cfg, c) }, (_, i) => i).filter((i) => isMoeLayer(cfg, c, i));
  const taskEmbedName = `${c}.taskEmbed`;
  const gateNames = layers.map((i) => `${c}.layers.${i}.ffn.gate`);
  const w = await reader.read([taskEmbedName, ...gateNames]);
  try {
    return layers.map((layer, j) => {
      const logits = tf.tidy(() => tf.matMul(w.get(taskEmbedName)!.slice([row, 0], [1, cfg.dModel]) as tf.Tensor2D, w.get(gateNames[j]) as tf.Tensor2D) as tf.Tensor2D);
      const { routes, probs } = topKGating(logits, cfg.moe.topK);
      const gates = Array.from(routes.gates.dataSync());
      tf.dispose([logits, probs, routes.gates]);
      return { layer, experts: Array.from(routes.experts), gates };
    });
  } finally {
    tf.dispose([...w.values()]);
  }
}

/**
 * Reads component c's weights, extracted for `task` when the component is task-routed and not yet
 * extracted. Only the needed tensors are read: the dense ones and, per MoE layer, the k chosen experts.
 */
export async function readComponent(reader: TensorSource, c: Component, task?: string): Promise<Weights> {
  const cfg = reader.config;
  const names = [...reader.shapes.keys()].filter((n) => tensorComponent(n) === c);
  if (!(hasExperts(cfg, c) && isTaskRouting(cfg.routing[c]))) {
    if (task !== undefined && cfg.extracted?.[c] !== undefined && cfg.extracted[c] !== task) {
      throw new Error(`this checkpoint's ${c} was extracted for "${cfg.extracted[c]}", not "${task}"`);
    }
    return reader.read(names);
  }
  if (task === undefined) return reader.read(names);
  const choice = await taskExperts(reader, c, task);
  const routingTensor = (n: string) => n.endsWith('.taskEmbed') || n.endsWith('.ffn.gate') || n.includes('.ffn.experts.');
  const weights = await reader.read(names.filter((n) => !routingTensor(n)));
  for (const { layer, experts, gates } of choice) {
    const l = `${c}.layers.${layer}.ffn`;
    const expertNames = experts.flatMap((e) => [`${l}.experts.${e}.wi`, `${l}.experts.${e}.wo`]);
    const ew = await reader.read(expertNames);
    const [wi, wo] = tf.tidy(() => [
      tf.concat(experts.map((e) => ew.get(`${l}.experts.${e}.wi`)!), 1),
      tf.concat(experts.map((e, s) => ew.get(`${l}.experts.${e}.wo`)!.mul(gates[s])), 0),
    ]);
    tf.dispose([...ew.values()]);
    weights.set(`${l}.wi`, wi);
    weights.set(`${l}.wo`, wo);
  }
  return weights;
}
