// Where a sub-network gets another replica: the placement rule, on figures the engine pool measures
// over a window (how busy each worker and sub-network was, how long the sub-network's sentences
// waited). Nothing here runs a worker; engine-pool.ts acts on the decision.
import { readFileSync } from 'node:fs';
import type { WorkerIndex } from './engine-worker-client.ts';

export interface ReplicaThresholds {
  /** A sub-network is hot once its replicas were busy with it this fraction of the window (0..1). */
  busyRatio: number;
  /** ... or once its sentences waited this long in the queue, on average over the window. */
  waitMs: number;
  /** Workers a sub-network may be resident on at most (1: no replicas). */
  maxReplicas: number;
  /**
   * No new replica while runnable threads waited for a CPU more than this fraction of the last 10 s
   * (0..1; 1: never refused): a replica then adds a thread but no core, and takes CPU from the other
   * pairs' workers (docs/hardening.md, "Costs and fairness").
   */
  maxCpuPressure: number;
}

export interface SubnetworkLoad {
  id: string;
  /** Its cache entries (models/subnetwork.ts), to tell what a worker would have to load. */
  entries: readonly string[];
  /** Workers it is resident on (or being loaded on), its home first. */
  replicas: readonly WorkerIndex[];
  /** Busy time with it on its replicas over the window, divided by (window × replicas). */
  busyRatio: number;
  /** Mean queue wait of its sentences dispatched in the window; 0 when none were. */
  meanWaitMs: number;
}

export interface WorkerLoad {
  index: WorkerIndex;
  /** Fraction of the window it ran at least one batch. */
  busyRatio: number;
  /** Its cache budget less the bytes its cache holds. */
  freeBytes: number;
  /** Keys of the entries its cache holds. */
  holds: ReadonlySet<string>;
}

export interface Placement {
  subnetwork: string;
  worker: WorkerIndex;
  /** Why: the figure that passed its threshold. */
  reason: string;
}

/**
 * At most one new replica per window: the hottest sub-network past a threshold, with fewer than
 * maxReplicas replicas, goes to the least-busy worker that does not hold it, is itself below the
 * busy threshold (a worker as busy would add memory but no capacity), and has free cache bytes
 * for the entries it lacks. Entry sizes come from loads seen anywhere; a sub-network whose size is
 * not known yet waits. Nothing is evicted to make room: cold replicas leave by the LRU, as any entry.
 * None while the host's CPU pressure (hostCpuPressure; undefined: unknown, not checked) is past
 * maxCpuPressure: its threads already wait for cores, so a replica would add no capacity either.
 */
export function planReplica(
  subnetworks: readonly SubnetworkLoad[],
  workers: readonly WorkerLoad[],
  entryBytes: ReadonlyMap<string, number>,
  t: ReplicaThresholds,
  cpuPressure?: number,
): Placement | undefined {
  if (cpuPressure !== undefined && cpuPressure > t.maxCpuPressure) return undefined;
  const hot = subnetworks
    .filter((s) => s.replicas.length < Math.min(t.maxReplicas, workers.length))
    .map((s) => ({ s, reason: hotReason(s, t) }))
    .filter((h): h is { s: SubnetworkLoad; reason: string } => h.reason !== undefined)
    .sort((a, b) => b.s.busyRatio - a.s.busyRatio || b.s.meanWaitMs - a.s.meanWaitMs);
  const byIdleness = [...workers].sort((a, b) => a.busyRatio - b.busyRatio || a.index - b.index);
  for (const { s, reason } of hot) {
    for (const w of byIdleness) {
      if (s.replicas.includes(w.index) || w.busyRatio >= t.busyRatio) continue;
      const needed = bytesToLoad(s.entries, w.holds, entryBytes);
      if (needed !== undefined && needed <= w.freeBytes) return { subnetwork: s.id, worker: w.index, reason };
    }
  }
  return undefined;
}

function hotReason(s: SubnetworkLoad, t: ReplicaThresholds): string | undefined {
  if (s.busyRatio >= t.busyRatio)
    return `busy ${(100 * s.busyRatio).toFixed(0)}% >= ${(100 * t.busyRatio).toFixed(0)}%`;
  if (s.meanWaitMs >= t.waitMs) return `mean queue wait ${s.meanWaitMs.toFixed(0)} ms >= ${t.waitMs} ms`;
  return undefined;
}

/**
 * The fraction of the last 10 s in which some runnable thread waited for a CPU (Linux PSI "some
 * avg10"): the container's (cgroup v2) where it has the file, else the host's; undefined where the
 * kernel reports none.
 */
export function hostCpuPressure(): number | undefined {
  for (const file of ['/sys/fs/cgroup/cpu.pressure', '/proc/pressure/cpu']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const avg10 = /^some avg10=([\d.]+)/m.exec(text);
    if (avg10 !== null) return Number(avg10[1]) / 100;
  }
  return undefined;
}

/** Bytes of the entries a worker lacks; undefined when one of their sizes is unknown. */
function bytesToLoad(
  entries: readonly string[],
  holds: ReadonlySet<string>,
  entryBytes: ReadonlyMap<string, number>,
): number | undefined {
  let total = 0;
  for (const key of entries) {
    if (holds.has(key)) continue;
    const bytes = entryBytes.get(key);
    if (bytes === undefined) return undefined;
    total += bytes;
  }
  return total;
}

/**
 * Busy time per key (a worker, or a sub-network on a worker) over a window: a key is busy while at
 * least one batch of it runs. `take` closes the window and starts the next.
 */
export class BusyMeter {
  private readonly running = new Map<string, { count: number; since: number }>();
  private readonly busyMs = new Map<string, number>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  start(key: string): void {
    const r = this.running.get(key);
    if (r !== undefined) r.count++;
    else this.running.set(key, { count: 1, since: this.now() });
  }

  end(key: string): void {
    const r = this.running.get(key);
    if (r === undefined) return;
    if (--r.count > 0) return;
    this.running.delete(key);
    this.add(key, this.now() - r.since);
  }

  /** Busy milliseconds of each key since the last take (running batches counted up to now). */
  take(): Map<string, number> {
    const now = this.now();
    for (const [key, r] of this.running) {
      this.add(key, now - r.since);
      r.since = now;
    }
    const out = new Map(this.busyMs);
    this.busyMs.clear();
    return out;
  }

  private add(key: string, ms: number): void {
    this.busyMs.set(key, (this.busyMs.get(key) ?? 0) + ms);
  }
}
