// The one seeded random number generator: mulberry32, a 32-bit state (so a sampler's whole state
// fits in one JSON number), fast, and good enough for sampling and synthetic data. Math.random
// cannot be seeded, and every use here must be reproducible.

/** A seeded generator whose `state` can be saved and restored (the trainer's batch sampler checkpoints it). */
export class Rng {
  constructor(public state: number) {
    this.state = state >>> 0;
  }

  // -> uniform in [0, 1)
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  // lo, hi -> an integer in [lo, hi)
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }

  // weights summing to 1 -> an index drawn with those probabilities
  pick(weights: number[]): number {
    let u = this.next();
    for (let i = 0; i < weights.length - 1; i++) {
      u -= weights[i];
      if (u < 0) return i;
    }
    return weights.length - 1;
  }
}

/** A seeded uniform [0, 1) source as a plain function. */
export function mulberry32(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}
