// Adam with an inverse-square-root learning-rate schedule and global-norm gradient clipping. Its
// own implementation, so the moments and step count can be saved and restored exactly.
import * as tf from '@tensorflow/tfjs';

export interface AdamSettings {
  peakLr: number;
  warmupSteps: number;
  /** The run's last step, and the steps before it over which the learning rate falls to zero (0: none). */
  steps: number;
  cooldownSteps: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  clipNorm: number;
}

/** Linear warm-up to peakLr at warmupSteps, then peakLr * sqrt(warmupSteps / step). step counts from 1. */
export function learningRate(step: number, peakLr: number, warmupSteps: number): number {
  if (warmupSteps === 0) return peakLr / Math.sqrt(step);
  return peakLr * Math.min(step / warmupSteps, Math.sqrt(warmupSteps / step));
}

/** What multiplies the learning rate during the cooldown: (lastStep - step + 1) / cooldownSteps, at most 1. */
export function cooldownFactor(step: number, lastStep: number, cooldownSteps: number): number {
  if (cooldownSteps === 0) return 1;
  return Math.max(0, Math.min(1, (lastStep - step + 1) / cooldownSteps));
}

export interface UpdateStats {
  lr: number;
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
}

export class Adam {
  step = 0;
  /** First and second moments, by variable name. */
  readonly m = new Map<string, tf.Tensor>();
  readonly v = new Map<string, tf.Tensor>();

  constructor(
    readonly settings: AdamSettings,
    readonly variables: Map<string, tf.Variable>,
  ) {
    for (const [name, w] of variables) {
      this.m.set(name, tf.zerosLike(w));
      this.v.set(name, tf.zerosLike(w));
    }
  }

  /** Clips the gradients (keyed like `variables`) to the global norm, then takes one Adam step. Does not dispose `grads`. */
  apply(grads: Map<string, tf.Tensor>): UpdateStats {
    const { beta1, beta2, epsilon, clipNorm } = this.settings;
    this.step++;
    const { peakLr, warmupSteps, steps, cooldownSteps } = this.settings;
    const lr = learningRate(this.step, peakLr, warmupSteps) * cooldownFactor(this.step, steps, cooldownSteps);
    const gradNorm = tf.tidy(
      () =>
        tf
          .addN([...grads.values()].map((g) => g.square().sum()))
          .sqrt()
          .dataSync()[0],
    );
    const scale = gradNorm > clipNorm ? clipNorm / gradNorm : 1;
    const correction1 = 1 - beta1 ** this.step;
    const correction2 = 1 - beta2 ** this.step;
    for (const [name, w] of this.variables) {
      const g = grads.get(name);
      if (g === undefined) continue;
      const [m, v] = tf.tidy(() => {
        const clipped = g.mul(scale);
        const m = this.m
          .get(name)!
          .mul(beta1)
          .add(clipped.mul(1 - beta1));
        const v = this.v
          .get(name)!
          .mul(beta2)
          .add(clipped.square().mul(1 - beta2));
        const update = m.div(correction1).div(v.div(correction2).sqrt().add(epsilon)).mul(lr);
        w.assign(w.sub(update));
        return [m, v];
      });
      this.m.get(name)!.dispose();
      this.v.get(name)!.dispose();
      this.m.set(name, m);
      this.v.set(name, v);
    }
    return { lr, gradNorm };
  }

  /** Replaces the moments and step count (resuming). */
  restore(step: number, m: Map<string, tf.Tensor>, v: Map<string, tf.Tensor>): void {
    for (const name of this.variables.keys()) {
      if (!m.has(name) || !v.has(name)) throw new Error(`optimizer state lacks "${name}"`);
      this.m.get(name)!.dispose();
      this.v.get(name)!.dispose();
      this.m.set(name, m.get(name)!);
      this.v.set(name, v.get(name)!);
    }
    this.step = step;
  }

  dispose(): void {
    tf.dispose([...this.m.values(), ...this.v.values()]);
  }
}
