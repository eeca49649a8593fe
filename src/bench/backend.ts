// The backend a benchmark measures: the one this thread already runs, or else TASKMOE_BACKEND, or
// else wasm (the CPU path the benchmarks compare against).
import { type BackendInfo, backendInfo, initBackend } from '../backend/index.ts';

export async function ensureBackend(log: (s: string) => void): Promise<BackendInfo & { description: string }> {
  const info = backendInfo() ?? (await initBackend({ force: process.env.TASKMOE_BACKEND || 'wasm', log }));
  return { ...info, description: `${info.name} (${info.package})` };
}
