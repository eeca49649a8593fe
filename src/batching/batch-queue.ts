/** What the batcher needs of an item: its length in tokens. Anything else is the runner's. */
export interface BatchItem {
  readonly tokens: number;
}

/**
 * What the batcher needs of a queue's key. Requests with equal ids share a queue, so a batch holds
 * one key's items; `pair` groups keys for admission (`maxQueuedSentences`) and chooses the lanes.
 * The id identifies the whole key (pair included): an identity only, never parsed back.
 */
export interface QueueKey {
  readonly pair: string;
  readonly id: string;
}

/** The executor a batch runs on (an engine worker's index). */
export type Lane = number;

export interface QueuedItem<I, Owner> {
  /** The request the item belongs to. */
  readonly owner: Owner;
  /** Position of the item in its request, for reassembling results. */
  readonly index: number;
  readonly item: I;
  /** Arrival order across all queues; decides which queue head is oldest. */
  readonly seq: number;
  readonly enqueuedAt: number;
}

/** The waiting items of one batch key, in arrival order. */
export class BatchQueue<K extends QueueKey, I extends BatchItem, Owner> {
  private items: QueuedItem<I, Owner>[] = [];
  private queuedTokens = 0;

  constructor(readonly key: K) {}

  get sentences(): number {
    return this.items.length;
  }

  get tokens(): number {
    return this.queuedTokens;
  }

  get head(): QueuedItem<I, Owner> | undefined {
    return this.items[0];
  }

  push(entry: QueuedItem<I, Owner>): void {
    this.items.push(entry);
    this.queuedTokens += entry.item.tokens;
  }

  /**
   * Removes and returns items from the head, in arrival order, while they fit both limits.
   * The first item is always taken, even if it alone exceeds `maxTokens`, so that an
   * over-long sentence still runs (alone) instead of blocking its queue forever.
   */
  takeBatch(maxSentences: number, maxTokens: number): QueuedItem<I, Owner>[] {
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
