// What `--model DIR` names: one checkpoint (DIR/config.json), or a directory of checkpoints (one
// imported OPUS-MT model per pair, say) served as one model. The pairs are the union; each pair is
// served by the first member (in name order) that has it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError, CheckpointReader, CONFIG_FILE } from './checkpoint.ts';
import { pairKey } from './config.ts';
import type { Direction } from './transformer.ts';

export interface Member {
  /** '' for a single checkpoint, else the sub-directory's name (prefixes its cache keys). */
  name: string;
  reader: CheckpointReader;
}

export class ModelSet {
  private readonly byPair = new Map<string, Member>();

  private constructor(readonly dir: string, readonly members: Member[]) {
    for (const m of members) for (const p of m.reader.config.pairs) if (!this.byPair.has(p)) this.byPair.set(p, m);
  }

  static async open(dir: string): Promise<ModelSet> {
    if (fs.existsSync(path.join(dir, CONFIG_FILE))) return new ModelSet(dir, [{ name: '', reader: await CheckpointReader.open(dir) }]);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CheckpointError(`model ${dir}: not a directory`);
    const names = fs.readdirSync(dir).filter((n) => fs.existsSync(path.join(dir, n, CONFIG_FILE))).sort();
    if (names.length === 0) throw new CheckpointError(`model ${dir}: no ${CONFIG_FILE} in it or in any sub-directory (a checkpoint, or a directory of checkpoints)`);
    const members: Member[] = [];
    for (const name of names) members.push({ name, reader: await CheckpointReader.open(path.join(dir, name)) });
    return new ModelSet(dir, members);
  }

  /** Every pair some member serves, in member order. */
  get pairs(): string[] {
    return [...this.byPair.keys()];
  }

  get languages(): string[] {
    return [...new Set(this.members.flatMap((m) => m.reader.config.languages))];
  }

  /** The member serving a pair; undefined when none does. */
  memberFor(dir: Direction): Member | undefined {
    return this.byPair.get(pairKey(dir.source, dir.target));
  }

  /** The single checkpoint's reader, or the first member's (for what all members are assumed to share, like routing). */
  get first(): CheckpointReader {
    return this.members[0].reader;
  }
}

/** A cache key of a member's component: a set's members keep their entries apart by name. */
export function memberKey(name: string, key: string): string {
  return name === '' ? key : `${name}/${key}`;
}
