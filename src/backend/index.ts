import * as tf from '@tensorflow/tfjs';

/** How TASKMOE_BACKEND and initBackend's `force` name a backend. */
export type BackendChoice = 'gpu' | 'node' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** What to force in another thread or process to get the same backend. */
  choice: BackendChoice;
  name: 'tensorflow' | 'wasm' | 'cpu';
  package: string;
  gpu: boolean;
}

export interface InitBackendOptions {
  /**
   * One of gpu|node|wasm|cpu, or onnx (serve on ONNX Runtime; tfjs, for loading and training, takes
   * the best backend that loads); defaults to env TASKMOE_BACKEND, else the best one that loads.
   */
  force?: string;
  log?: (msg: string) => void;
}

interface Candidate {
  choice: BackendChoice;
  name: BackendInfo['name'];
  package: string;
  /** Whether importing the package registers the backend; the cpu one ships inside tfjs. */
  needsImport: boolean;
}

/** In order of preference. */
const CANDIDATES: readonly Candidate[] = [
  { choice: 'gpu', name: 'tensorflow', package: '@tensorflow/tfjs-node-gpu', needsImport: true },
  { choice: 'node', name: 'tensorflow', package: '@tensorflow/tfjs-node', needsImport: true },
  { choice: 'wasm', name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', needsImport: true },
  { choice: 'cpu', name: 'cpu', package: '@tensorflow/tfjs-backend-cpu', needsImport: false },
];
const CHOICES = CANDIDATES.map((candidate) => candidate.choice);
const ONNX = 'onnx';

/** The library that decodes for serving and translation: TensorFlow.js or ONNX Runtime (CPU). */
export type ServingEngine = 'tfjs' | 'onnx';

// Per thread: each worker has its own module instance and its own tfjs engine.
let initialising: Promise<BackendInfo> | undefined;
let initialised: BackendInfo | undefined;
let serving: ServingEngine | undefined;

/**
 * Selects and activates the tfjs backend once per thread. Later calls share the first call's
 * result; one that forces a different backend than the one in use is an error.
 */
export async function initBackend(opts: InitBackendOptions = {}): Promise<BackendInfo> {
  const requested = opts.force ?? process.env.TASKMOE_BACKEND;
  const onnx = requested === ONNX;
  const forced = onnx ? undefined : parseChoice(requested);
  if (initialising === undefined) {
    const log = opts.log ?? ((msg: string) => console.error(msg));
    initialising = selectBackend(forced, log).then(
      async (info) => {
        // A forced tfjs backend serves too; otherwise ONNX Runtime unless tfjs has a GPU.
        serving = onnx || (forced === undefined && !info.gpu) ? 'onnx' : 'tfjs';
        if (serving === 'onnx') {
          await (await import('../models/engine.ts')).loadOnnxEngine();
          log(
            `taskmoe: serving on ONNX Runtime (onnxruntime-node, CPU)${onnx ? ' (forced)' : ''}; tfjs loads and trains`,
          );
        }
        return (initialised = info);
      },
      (err: unknown) => {
        initialising = undefined; // a failed attempt must not block a retry with another choice
        throw err;
      },
    );
  }
  const info = await initialising;
  if (forced !== undefined && info.choice !== forced) {
    throw new Error(`backend already initialised as ${describe(info)}; cannot switch to '${forced}'`);
  }
  return info;
}

/**
 * Which library serves in this thread: ONNX Runtime when forced (TASKMOE_BACKEND=onnx) or when no
 * tfjs backend was forced and tfjs has no GPU; TensorFlow.js otherwise, and before initBackend.
 */
export function servingEngine(): ServingEngine {
  return serving ?? 'tfjs';
}

/** The backend chosen by initBackend in this thread, if it has finished. */
export function backendInfo(): BackendInfo | undefined {
  return initialised;
}

/**
 * This thread's backend as a choice, for workers and child processes to force the same one: the
 * one initBackend chose, or else the one tfjs is using (set by tf.setBackend directly).
 */
export function backendChoice(): BackendChoice {
  if (initialised !== undefined) return initialised.choice;
  const active = tf.getBackend();
  return CANDIDATES.find((c) => c.name === active && c.choice !== 'gpu')?.choice ?? 'cpu';
}

function parseChoice(value: string | undefined): BackendChoice | undefined {
  if (value === undefined || value === '') return undefined;
  const choice = CHOICES.find((allowed) => allowed === value);
  if (choice === undefined) {
    throw new Error(
      `invalid backend '${value}' (TASKMOE_BACKEND / force): allowed values are ${[...CHOICES, ONNX].join(', ')}`,
    );
  }
  return choice;
}

async function selectBackend(forced: BackendChoice | undefined, log: (msg: string) => void): Promise<BackendInfo> {
  if (forced !== undefined) {
    const candidate = CANDIDATES.find((c) => c.choice === forced)!;
    let info: BackendInfo;
    try {
      info = await activate(candidate);
    } catch (err) {
      throw new Error(`cannot use forced backend '${forced}' (${candidate.package}): ${(err as Error).message}`, {
        cause: err,
      });
    }
    log(`${logLine(info)} (forced)`);
    return info;
  }

  const skipped: string[] = [];
  for (const candidate of CANDIDATES) {
    try {
      const info = await activate(candidate);
      log(skipped.length === 0 ? logLine(info) : `${logLine(info)}; skipped ${skipped.join('; ')}`);
      return info;
    } catch (err) {
      skipped.push(`${candidate.package}: ${(err as Error).message}`);
    }
  }
  throw new Error(`no tfjs backend could be initialised: ${skipped.join('; ')}`);
}

async function activate(candidate: Candidate): Promise<BackendInfo> {
  const restoreHandlers = keepProcessHandlers();
  try {
    if (candidate.needsImport) await importBackendPackage(candidate.package);
    await setBackend(candidate.name);
  } finally {
    restoreHandlers();
  }
  return { choice: candidate.choice, name: candidate.name, package: candidate.package, gpu: usesGpu(candidate) };
}

/**
 * The wasm backend's Emscripten runtime installs process-wide handlers that rethrow every
 * unhandled rejection, which would turn any stray rejection into a crash of the whole server.
 * Returns a function that removes whatever handlers were added since the call.
 */
function keepProcessHandlers(): () => void {
  const uncaught = new Set(process.listeners('uncaughtException'));
  const rejection = new Set(process.listeners('unhandledRejection'));
  return () => {
    for (const l of process.listeners('uncaughtException'))
      if (!uncaught.has(l)) process.removeListener('uncaughtException', l);
    for (const l of process.listeners('unhandledRejection'))
      if (!rejection.has(l)) process.removeListener('unhandledRejection', l);
  };
}

async function importBackendPackage(specifier: string): Promise<void> {
  try {
    // A string variable, so TypeScript does not require the optional packages to be installed.
    await import(specifier);
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    if (code === 'ERR_MODULE_NOT_FOUND' && message.includes(`'${specifier}'`)) {
      throw new Error(`not installed (npm install ${specifier})`);
    }
    throw new Error(`installed but failed to load: ${message}`);
  }
}

/**
 * tf.setBackend only logs a failing backend's error and returns false, so build the backend
 * from its registered factory here to get the reason, then hand tfjs the ready instance.
 * (Not tf.findBackend: that initialises the backend as a side effect, swallowing the error.)
 */
async function setBackend(name: string): Promise<void> {
  if (tf.engine().registry[name] === undefined) {
    const factory = tf.engine().registryFactory[name]?.factory;
    if (factory === undefined) throw new Error(`tfjs has no '${name}' backend registered`);
    const backend = await factory();
    tf.removeBackend(name);
    tf.registerBackend(name, () => backend);
  }
  if (!(await tf.setBackend(name))) throw new Error(`tfjs could not switch to the '${name}' backend`);
}

/** tfjs-node-gpu runs on the CPU when TensorFlow finds no usable CUDA device. */
function usesGpu(candidate: Candidate): boolean {
  if (candidate.choice !== 'gpu') return false;
  return (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
}

function describe(info: BackendInfo): string {
  return `${info.name} (${info.package})`;
}

function logLine(info: BackendInfo): string {
  return `taskmoe: tfjs backend ${describe(info)}, GPU: ${info.gpu ? 'yes' : 'no'}`;
}
