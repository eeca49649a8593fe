// An ONNX Runtime session run through the binding's synchronous call: onnxruntime-node's
// InferenceSession.run wraps the same call in a promise and a setImmediate, which would make every
// decoder step asynchronous for nothing (the work runs on this thread either way).
import { Tensor } from 'onnxruntime-node';
import { type Binding, binding, initOrt } from 'onnxruntime-node/dist/binding.js';

export { Tensor };

export interface SessionOptions {
  /** Intra-op threads; 1 by default (one engine worker per core), TASKMOE_ONNX_THREADS otherwise. */
  threads?: number;
}

/** Intra-op threads from TASKMOE_ONNX_THREADS, else 1. */
export function defaultThreads(): number {
  const raw = process.env.TASKMOE_ONNX_THREADS;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`TASKMOE_ONNX_THREADS must be a positive integer, got "${raw}"`);
  return n;
}

export class OrtSession {
  /** Sessions created and not yet released, in this thread (tests check eviction releases them). */
  static live = 0;
  private readonly session: Binding.InferenceSession;
  private disposed = false;

  constructor(model: Uint8Array, opts: SessionOptions = {}) {
    initOrt();
    this.session = new binding.InferenceSession();
    this.session.loadModel(model.buffer as ArrayBuffer, model.byteOffset, model.byteLength, {
      intraOpNumThreads: opts.threads ?? defaultThreads(),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    OrtSession.live++;
  }

  get inputNames(): string[] {
    return this.session.inputMetadata.map((m) => m.name);
  }

  get outputNames(): string[] {
    return this.session.outputMetadata.map((m) => m.name);
  }

  /** Runs the graph on `feeds`, returning the outputs named in `fetch`; those in `into` are written there. */
  run(
    feeds: Record<string, Tensor>,
    fetch: readonly string[],
    into: Record<string, Tensor> = {},
  ): Record<string, Tensor> {
    if (this.disposed) throw new Error('the ONNX Runtime session was disposed');
    const fetches = Object.fromEntries(fetch.map((name) => [name, into[name] ?? null]));
    return this.session.run(feeds, fetches, {}) as Record<string, Tensor>;
  }

  /** Releases the native session and its weights now (InferenceSession.release's call), not at garbage collection. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    OrtSession.live--;
    this.session.dispose();
  }
}
