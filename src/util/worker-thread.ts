// Starting worker threads from compiled and from source modules alike.
import { Worker } from 'node:worker_threads';

/**
 * A worker thread running the module `name` that sits beside the caller's module (`callerUrl`, its
 * import.meta.url): the .js file in dist/, or under tsx (tests, development) the .ts source.
 */
export function startWorker(callerUrl: string, name: string, workerData: unknown): Worker {
  const fromSource = callerUrl.endsWith('.ts');
  const entry = new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, callerUrl);
  if (!fromSource) return new Worker(entry, { workerData });
  // tsx's --import hook does not reach worker threads on Node 20; register it inside the worker.
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}
