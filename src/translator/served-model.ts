// What a server or CLI serves: the model set behind `--model DIR` with each member's tokenizer.
import * as path from 'node:path';
import { type ModelConfig, parsePair } from '../models/config.ts';
import { subnetworkOf } from '../models/subnetwork.ts';
import { type Member, ModelSet, memberKey } from '../models/model-set.ts';
import type { Direction } from '../models/transformer.ts';
import { type TextTokenizer, loadTokenizer } from '../tokenizer/model-tokenizer.ts';
import { InputError, checkDirection } from './index.ts';

export class ServedModel {
  private constructor(
    readonly set: ModelSet,
    private readonly tokenizers: Map<Member, TextTokenizer>,
  ) {}

  static async open(dir: string): Promise<ServedModel> {
    const set = await ModelSet.open(dir);
    const tokenizers = new Map<Member, TextTokenizer>();
    for (const m of set.members) {
      const tokenizer = await loadTokenizer(m.reader.dir, m.reader.config);
      tokenizer.checkServes(m.reader.config, path.join(m.reader.dir, 'config.json'));
      tokenizers.set(m, tokenizer);
    }
    return new ServedModel(set, tokenizers);
  }

  get pairs(): string[] {
    return this.set.pairs;
  }

  get languages(): string[] {
    return this.set.languages;
  }

  /** The longest source any member accepts (each request is checked against its own member's). */
  get maxLength(): number {
    return Math.max(...this.set.members.map((m) => m.reader.config.maxLength));
  }

  /** Throws an InputError naming what is wrong when no member translates `dir`. */
  checkDirection(dir: Direction): void {
    checkDirection(this.languages, this.pairs, dir);
  }

  private member(dir: Direction): Member {
    const m = this.set.memberFor(dir);
    if (m === undefined)
      throw new InputError(`unsupported pair ${dir.source}-${dir.target}; supported pairs: ${this.pairs.join(', ')}`);
    return m;
  }

  /** The config of the checkpoint serving `dir`. */
  configFor(dir: Direction): ModelConfig {
    return this.member(dir).reader.config;
  }

  /**
   * The sub-network a pair runs on: an id equal for pairs on the same weights (the member's name and
   * its sub-network's id), and the cache entries it needs, as a worker's cache names them.
   */
  subnetwork(pair: string): { id: string; entries: string[] } {
    const dir = parsePair(pair);
    const m = this.member(dir);
    const { id, entries } = subnetworkOf(m.reader.config, dir);
    return { id: m.name === '' ? id : `${m.name} ${id}`, entries: entries.map((k) => memberKey(m.name, k)) };
  }

  tokenizerFor(dir: Direction): TextTokenizer {
    return this.tokenizers.get(this.member(dir))!;
  }
}
