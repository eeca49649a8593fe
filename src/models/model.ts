// A whole translation model in memory: embeddings, encoder and decoder, built from a checkpoint
// either in full or as the sub-network that serves one direction.
import type { TensorSource } from './checkpoint.ts';
import type { ModelConfig } from './config.ts';
import { readComponent, subnetworkConfig, subnetworkTasks } from './extract.ts';
import { embeddingNames } from './embeddings.ts';
import { type Weights, weight } from './layers.ts';
import { Decoder, type Direction, Embeddings, Encoder } from './transformer.ts';

export class Seq2Seq {
  constructor(
    readonly config: ModelConfig,
    readonly embeddings: Embeddings,
    readonly encoder: Encoder,
    readonly decoder: Decoder,
  ) {}

  /** Builds the model from weights it then owns. */
  static fromWeights(config: ModelConfig, weights: Weights): Seq2Seq {
    const part = (prefix: string) => new Map([...weights].filter(([n]) => n.startsWith(prefix)));
    const embedding = new Map(embeddingNames(config).map((n) => [n, weight(weights, n)]));
    return new Seq2Seq(config, new Embeddings(config, embedding), new Encoder(config, part('encoder.')), new Decoder(config, part('decoder.')));
  }

  /** The full model as stored. */
  static async load(reader: TensorSource): Promise<Seq2Seq> {
    return Seq2Seq.fromWeights(reader.config, await reader.read(reader.shapes.keys()));
  }

  /** The sub-network serving `dir`: task-routed components extracted for its tasks, read from disk alone. */
  static async loadSubnetwork(reader: TensorSource, dir: Direction): Promise<Seq2Seq> {
    const config = subnetworkConfig(reader.config, dir);
    if (config.pairs.length === 0) throw new Error(`the model does not serve ${dir.source}-${dir.target}`);
    const tasks = subnetworkTasks(reader.config, dir);
    const weights: Weights = new Map([
      ...(await reader.read(embeddingNames(config))),
      ...(await readComponent(reader, 'encoder', tasks.encoder)),
      ...(await readComponent(reader, 'decoder', tasks.decoder)),
    ]);
    return Seq2Seq.fromWeights(config, weights);
  }

  /** All weights by name, as a checkpoint stores them. */
  get weights(): Weights {
    return new Map([...this.embeddings.weights, ...this.encoder.weights, ...this.decoder.weights]);
  }

  get bytes(): number {
    return this.embeddings.bytes + this.encoder.bytes + this.decoder.bytes;
  }

  dispose(): void {
    this.embeddings.dispose();
    this.encoder.dispose();
    this.decoder.dispose();
  }
}
