// Differentiable ops whose tfjs default gradients are slow or missing on the wasm backend. The
// forward passes are the plain tfjs ops, so inference gives identical results.
import * as tf from '@tensorflow/tfjs';

type GradSave = (tensors: tf.Tensor[]) => void;
type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

// Default matMul gradients use the transposeA/transposeB flags, which wasm runs at a tenth of the
// speed of an untransposed 2-D matMul; an explicit transpose then a plain matMul is much faster.
const matMul2dWithGrad = tf.customGrad(((a: tf.Tensor2D, b: tf.Tensor2D, save: GradSave) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor2D, [sa, sb]: tf.Tensor[]) => [
      tf.matMul(dy, tf.transpose(sb as tf.Tensor2D)),
      tf.matMul(tf.transpose(sa as tf.Tensor2D), dy),
    ],
  };
}) as unknown as CustomGradientFunc);

// a: [N, k], b: [k, m] -> [N, m]. TensorFlow's kernels take the transpose flags of tfjs's own
// gradients at full speed, and the explicit transposes would only add copies there.
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return nativeKernels() ? tf.matMul(a, b) : (matMul2dWithGrad(a, b) as tf.Tensor2D);
}

/** Whether TensorFlow's own kernels run the ops (tfjs-node): any TensorFlow op can then be called by name. */
export function nativeKernels(): boolean {
  return tf.getBackend() === 'tensorflow';
}

interface TensorFlowBackend {
  binding: { TF_ATTR_TYPE: number; TF_FLOAT: number };
  executeMultipleOutputs(name: string, attrs: unknown[], inputs: tf.Tensor[], outputs: number): tf.Tensor[];
}

/** Runs one TensorFlow op over float32 inputs (its type attribute "T") on tfjs-node; its outputs are tfjs tensors. */
export function nativeOp(name: string, inputs: tf.Tensor[], outputs = 1): tf.Tensor[] {
  if (!nativeKernels()) throw new Error(`TensorFlow op ${name} needs the tfjs-node backend, not ${tf.getBackend()}`);
  const backend = tf.backend() as unknown as TensorFlowBackend;
  const type = { name: 'T', type: backend.binding.TF_ATTR_TYPE, value: backend.binding.TF_FLOAT };
  return backend.executeMultipleOutputs(name, [type], inputs, outputs);
}

// tfjs's ReLU gradient multiplies by Step(x), which tfjs-node builds from six full-size kernels
// (IsNan, Greater, Fill twice, Select twice); TensorFlow's ReluGrad is one.
const reluWithNativeGrad = tf.customGrad(((x: tf.Tensor2D, save: GradSave) => {
  const y = tf.relu(x);
  save([y]);
  return { value: y, gradFunc: (dy: tf.Tensor2D, [sy]: tf.Tensor[]) => nativeOp('ReluGrad', [dy, sy])[0] };
}) as unknown as CustomGradientFunc);

// x: [N, f] -> max(x, 0), same values and gradient on every backend
export function relu(x: tf.Tensor2D): tf.Tensor2D {
  return nativeKernels() ? (reluWithNativeGrad(x) as tf.Tensor2D) : tf.relu(x);
}

// tf.gather's gradient needs UnsortedSegmentSum, which wasm lacks. ScatterNd, which wasm has,
// sums the rows of repeated ids, which is exactly the gradient of a gather. (A one-hot [N, V]
// transposed times dY is the other option; it costs 2*N*V*d FLOPs against N*d here.)
const gatherRowsWithGrad = tf.customGrad(((table: tf.Tensor2D, ids: tf.Tensor1D, save: GradSave) => {
  save([ids]);
  const shape = table.shape;
  return {
    value: rowsCopyOnHost() ? takeRows(table, Array.from(ids.dataSync())) : tf.gather(table, ids),
    gradFunc: (dy: tf.Tensor2D, [sids]: tf.Tensor[]) => [
      tf.scatterND(sids.expandDims(1), dy, shape),
      tf.zerosLike(sids),
    ],
  };
}) as unknown as CustomGradientFunc);

// table: [V, d], ids: int32 [N] -> [N, d]
export function gatherRows(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  return gatherRowsWithGrad(table, ids) as tf.Tensor2D;
}

// Row selection: decoder state bookkeeping, embedding lookups, MoE dispatch. The wasm Gather
// kernel costs ~70-100 ns per output element (a [32,4,20,48] cache: ~4.4 ms for 24 rows) against
// ~0.1 ms for copying the rows through host memory; the cpu backend keeps its data on the host
// anyway. On other backends (tfjs-node, GPU) the data stays on the device and
// tf.gather is the fast path.
export function rowsCopyOnHost(): boolean {
  const backend = tf.getBackend();
  return backend === 'wasm' || backend === 'cpu';
}

// t: [N, ...], rows: indices into N -> [rows.length, ...]
export function takeRows<T extends tf.Tensor>(t: T, rows: readonly number[]): T {
  if (!rowsCopyOnHost()) {
    // The same error on every backend (tfjs-node's Gather words its own).
    const n = t.shape[0];
    for (const row of rows) if (!(row >= 0 && row < n)) throw new RangeError(`row ${row} is outside [0, ${n})`);
    return tf.tidy(() => tf.gather(t, tf.tensor1d(rows as number[], 'int32')) as T);
  }
  return hostRows(t.dataSync() as Float32Array | Int32Array, t.shape, t.dtype, rows) as T;
}

// data: the values of a [N, ...] tensor, rows: indices into N -> [rows.length, ...]
export function hostRows(data: Float32Array | Int32Array, shape: readonly number[], dtype: tf.DataType, rows: readonly number[]): tf.Tensor {
  const [n, ...rest] = shape;
  const rowSize = rest.reduce((a, b) => a * b, 1);
  const out = data instanceof Int32Array ? new Int32Array(rows.length * rowSize) : new Float32Array(rows.length * rowSize);
  rows.forEach((row, i) => {
    if (!(row >= 0 && row < n)) throw new RangeError(`row ${row} is outside [0, ${n})`);
    out.set(data.subarray(row * rowSize, (row + 1) * rowSize), i * rowSize);
  });
  return tf.tensor(out, [rows.length, ...rest], dtype);
}
