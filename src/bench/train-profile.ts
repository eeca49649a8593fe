// Where one training step's time goes, by TensorFlow.js kernel: tf.profile over the step, kernels
// summed by name. tfjs-node runs each kernel synchronously, so a kernel's time is its wall time;
// customGrad ops (the chunked output layer is one) are listed too, holding the kernels inside them.
import * as tf from '@tensorflow/tfjs';

export interface KernelTime {
  name: string;
  ms: number;
  calls: number;
}

export interface StepProfile {
  kernels: KernelTime[];
  /** Kernel launches in the step. */
  launches: number;
  /** Most bytes held by tensors at once. */
  peakBytes: number;
}

/** Profiles one call of `step`; kernels by total time, longest first. */
export async function profileStep(step: () => void): Promise<StepProfile> {
  const info = await tf.profile(step);
  const byName = new Map<string, KernelTime>();
  for (const k of info.kernels) {
    const entry = byName.get(k.name) ?? { name: k.name, ms: 0, calls: 0 };
    entry.ms += Number(k.kernelTimeMs);
    entry.calls++;
    byName.set(k.name, entry);
  }
  const kernels = [...byName.values()].sort((a, b) => b.ms - a.ms);
  return { kernels, launches: info.kernels.length, peakBytes: info.peakBytes };
}

/** The profile as lines: a header, then the `top` kernels with their share of the summed time. */
export function formatProfile(p: StepProfile, top = 15): string[] {
  const total = p.kernels.reduce((a, k) => a + k.ms, 0);
  return [
    `one step by kernel: ${p.launches} launches, ${total.toFixed(0)} ms summed, peak ${(p.peakBytes / 2 ** 20).toFixed(0)} MiB of tensors`,
    ...p.kernels
      .slice(0, top)
      .map(
        (k) =>
          `  ${k.name.padEnd(28)} ${k.ms.toFixed(1).padStart(8)} ms ${((100 * k.ms) / total).toFixed(0).padStart(3)}%  x${k.calls}`,
      ),
  ];
}
