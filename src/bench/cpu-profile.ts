// The main thread's CPU profile (V8's sampling profiler through the inspector) around a stretch of a
// benchmark, and a per-function summary of it: self and total milliseconds, so that two profiles of
// the same load (a feature on and off) can be compared function by function.
import { Session } from 'node:inspector/promises';

/** V8's .cpuprofile (what `node --cpu-prof` writes and Chrome DevTools reads). */
export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples: number[];
  /** Microseconds before each sample. */
  timeDeltas: number[];
}

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

/** Starts sampling this thread every `intervalUs`; the returned function stops and returns the profile. */
export async function startCpuProfile(intervalUs = 100): Promise<() => Promise<CpuProfile>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: intervalUs });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    return profile as CpuProfile;
  };
}

export interface FunctionTime {
  /** `name file:line`, the same across profiles of one build. */
  fn: string;
  selfMs: number;
  /** Samples with this function anywhere on the stack (counted once per sample under recursion). */
  totalMs: number;
}

/** Self and total time per function, largest total first. */
export function functionTimes(profile: CpuProfile): FunctionTime[] {
  const parent = new Map<number, number>();
  const nameOf = new Map<number, string>();
  for (const n of profile.nodes) {
    const { functionName, url, lineNumber, columnNumber } = n.callFrame;
    const file = url.replace(/^.*\/(node_modules\/|src\/)/, '$1');
    nameOf.set(n.id, `${functionName || '(anonymous)'} ${file}:${lineNumber + 1}:${columnNumber + 1}`);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const times = new Map<string, FunctionTime>();
  const at = (fn: string) => times.get(fn) ?? times.set(fn, { fn, selfMs: 0, totalMs: 0 }).get(fn)!;
  profile.samples.forEach((id, i) => {
    // A sample's time is the interval after it (V8 records the delta before each sample).
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    at(nameOf.get(id)!).selfMs += ms;
    const seen = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const fn = nameOf.get(n)!;
      if (seen.has(fn)) continue;
      seen.add(fn);
      at(fn).totalMs += ms;
    }
  });
  return [...times.values()].sort((a, b) => b.totalMs - a.totalMs);
}

/** Function times summed over several profiles and divided by the requests they served: µs per request. */
export function perRequestUs(
  profiles: CpuProfile[],
  requests: number,
): Map<string, { selfUs: number; totalUs: number }> {
  const out = new Map<string, { selfUs: number; totalUs: number }>();
  for (const p of profiles)
    for (const t of functionTimes(p)) {
      const o = out.get(t.fn) ?? out.set(t.fn, { selfUs: 0, totalUs: 0 }).get(t.fn)!;
      o.selfUs += (t.selfMs * 1000) / requests;
      o.totalUs += (t.totalMs * 1000) / requests;
    }
  return out;
}

/** The functions whose per-request time differs most between two runs (b - a), by self and by total time. */
export function profileDifference(
  a: Map<string, { selfUs: number; totalUs: number }>,
  b: Map<string, { selfUs: number; totalUs: number }>,
  top = 25,
): string {
  const fns = new Set([...a.keys(), ...b.keys()]);
  const zero = { selfUs: 0, totalUs: 0 };
  const rows = [...fns].map((fn) => ({ fn, a: a.get(fn) ?? zero, b: b.get(fn) ?? zero }));
  const table = (k: 'selfUs' | 'totalUs') =>
    rows
      .sort((x, y) => Math.abs(y.b[k] - y.a[k]) - Math.abs(x.b[k] - x.a[k]))
      .slice(0, top)
      .map(
        (r) =>
          `${(r.b[k] - r.a[k]).toFixed(1).padStart(8)} ${r.a[k].toFixed(1).padStart(8)} ${r.b[k].toFixed(1).padStart(8)}  ${r.fn}`,
      )
      .join('\n');
  const head = `${'diff'.padStart(8)} ${'a'.padStart(8)} ${'b'.padStart(8)}  function (µs per request)`;
  return `self time:\n${head}\n${table('selfUs')}\n\ntotal time:\n${head}\n${table('totalUs')}`;
}
