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

// a: [N, k], b: [k, m] -> [N, m]
export function matMul2d(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  return matMul2dWithGrad(a, b) as tf.Tensor2D;
}

// tf.gather's gradient needs UnsortedSegmentSum, which wasm lacks. ScatterNd, which wasm has,
// sums the rows of repeated ids, which is exactly the gradient of a gather. (A one-hot [N, V]
// transposed times dY is the other option; it costs 2*N*V*d FLOPs against N*d here.)
const gatherRowsWithGrad = tf.customGrad(((table: tf.Tensor2D, ids: tf.Tensor1D, save: GradSave) => {
  save([ids]);
  const shape = table.shape;
  return {
    value: tf.gather(table, ids),
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
