/** One unit of work: a sentence, with its length in tokens and whatever the runner needs. */
export interface BatchItem {
  readonly tokens: number;
  readonly payload: unknown;
}

export interface QueuedItem<Owner> {
  /** The request the item belongs to. */
  readonly owner: Owner;
  /** Position of the item in its request, for reassembling results. */
  readonly index: number;
  readonly item: BatchItem;
  /** Arrival order across all pairs; decides which queue head is oldest. */
  readonly seq: number;
  readonly enqueuedAt: number;
}

/** The waiting items of one language pair, in arrival order. */
export class PairQueue<Owner> {
  private items: QueuedItem<Owner>[] = [];
  private queuedTokens = 0;

  constructor(
    readonly pair: string,
    readonly lane: string,
  ) {}

  get sentences(): number {
    return this.items.length;
  }

  get tokens(): number {
    return this.queuedTokens;
  }

  get head(): QueuedItem<Owner> | undefined {
    return this.items[0];
  }

  push(entry: QueuedItem<Owner>): void {
    this.items.push(entry);
    this.queuedTokens += entry.item.tokens;
  }

  /**
   * Removes and returns items from the head, in arrival order, while they fit both limits.
   * The first item is always taken, even if it alone exceeds `maxTokens`, so that an
   * over-long sentence still runs (alone) instead of blocking its queue forever.
   */
  takeBatch(maxSentences: number, maxTokens: number): QueuedItem<Owner>[] {
    let count = 0;
    let tokens = 0;
    for (const entry of this.items) {
      if (count === maxSentences) break;
      if (count > 0 && tokens + entry.item.tokens > maxTokens) break;
      count += 1;
      tokens += entry.item.tokens;
    }
    this.queuedTokens -= tokens;
    return this.items.splice(0, count);
  }

  /** Removes every item of `owner`; returns how many were removed. */
  removeOwner(owner: Owner): number {
    const kept = this.items.filter((entry) => entry.owner !== owner);
    const removed = this.items.length - kept.length;
    this.items = kept;
    this.queuedTokens = kept.reduce((sum, entry) => sum + entry.item.tokens, 0);
    return removed;
  }
}
