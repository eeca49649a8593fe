// The sub-networks an engine worker serves, kept on the device within a byte budget. A sub-network
// is built from three entries: the embeddings, an encoder and a decoder. A component that is not
// task-routed (token, sentence, dense, or already extracted) is one entry shared by every direction;
// a task-routed one is one entry per task, so with Token/Target routing one encoder serves every
// pair and one extracted decoder serves every pair into a language.
//
// lru-cache disposes an evicted entry even while a request is decoding with it, so each entry counts
// its users: an entry evicted while in use is "held" outside the cache and freed at its last release.
import { LRUCache } from 'lru-cache';
import type { TensorSource } from './checkpoint.ts';
import type { Component } from './config.ts';
import { embeddingNames } from './embeddings.ts';
import { readComponent, subnetworkConfig } from './extract.ts';
import type { Weights } from './layers.ts';
import { Seq2Seq } from './model.ts';
import { ModelSet, memberKey } from './model-set.ts';
import { subnetworkOf } from './subnetwork.ts';
import { Decoder, type Direction, Embeddings, Encoder } from './transformer.ts';

export type CacheEvent =
  | { type: 'hit' | 'miss'; key: string }
  | { type: 'evict'; key: string; bytes: number }
  | { type: 'load'; key: string; bytes: number; seconds: number };

export interface SubnetworkCacheOptions {
  /** Device bytes the cached entries may hold together (entries in use may exceed it until released). */
  budgetBytes: number;
  onEvent?: (event: CacheEvent) => void;
}

export interface CacheStats {
  /** Entries in the cache, and the device bytes they hold. */
  entries: number;
  bytes: number;
  /** Device bytes of entries outside the cache that requests still use: evicted ones, and those over the budget. */
  heldBytes: number;
  /** Entry lookups served without starting a load (a lookup that joins a load in flight is a hit). */
  hits: number;
  /** Lookups that started a load. */
  misses: number;
  evictions: number;
  /** Durations of the most recent loads (up to RECENT_LOADS), oldest first; onEvent sees every one. */
  loadSeconds: number[];
}

/** A sub-network lent to one request. The model's parts belong to the cache: never dispose it. */
export interface Lease {
  readonly model: Seq2Seq;
  /** Gives the parts back; calling it again does nothing. */
  release(): void;
}

const RECENT_LOADS = 256;

type Part = Embeddings | Encoder | Decoder;

interface Entry {
  readonly key: string;
  readonly part: Part;
  readonly bytes: number;
  /** Leases (and acquires in progress) using the entry; it may be freed only at zero. */
  users: number;
}

/** Acquires waiting on one load: every one of them uses the entry once it exists. */
interface Loading {
  claims: { count: number };
  entry: Promise<Entry>;
}

export class SubnetworkCache {
  private readonly lru: LRUCache<string, Entry>;
  /** Entries in use but not in the cache: evicted while in use, over the budget, or loaded after dispose(). */
  private readonly held = new Map<string, Entry>();
  private readonly loading = new Map<string, Loading>();
  private readonly budgetBytes: number;
  private readonly onEvent: (event: CacheEvent) => void;
  private readonly counts = { hits: 0, misses: 0, evictions: 0 };
  private readonly recentLoads: number[] = [];
  private disposed = false;

  /** One checkpoint, or a model set whose members' entries share the budget (keys prefixed by member name). */
  constructor(private readonly sources: TensorSource | ModelSet, options: SubnetworkCacheOptions) {
    if (!Number.isInteger(options.budgetBytes) || options.budgetBytes <= 0) {
      throw new Error(`budgetBytes must be a positive integer, got ${options.budgetBytes}`);
    }
    this.budgetBytes = options.budgetBytes;
    this.onEvent = options.onEvent ?? (() => {});
    this.lru = new LRUCache<string, Entry>({
      maxSize: options.budgetBytes,
      sizeCalculation: (entry) => entry.bytes,
      dispose: (entry, _key, reason) => this.leftCache(entry, reason === 'evict'),
    });
  }

  /** Lends the sub-network serving `dir`, loading whichever of its three entries are not on the device. */
  async acquire(dir: Direction): Promise<Lease> {
    if (this.disposed) throw new Error('the sub-network cache is disposed');
    const { name, source } = this.sourceFor(dir);
    const cfg = source.config;
    const config = subnetworkConfig(cfg, dir);
    if (config.pairs.length === 0) throw new Error(`the model does not serve ${dir.source}-${dir.target}`);
    const { encoder: encoderTask, decoder: decoderTask, entries: subnetworkEntries } = subnetworkOf(cfg, dir);
    const keys = subnetworkEntries.map((k) => memberKey(name, k));
    const settled = await Promise.allSettled([
      this.claim(keys[0], () => this.loadEmbeddings(source)),
      this.claim(keys[1], () => this.loadStack(source, 'encoder', encoderTask)),
      this.claim(keys[2], () => this.loadStack(source, 'decoder', decoderTask)),
    ]);
    const entries = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined) {
      entries.forEach((e) => this.unclaim(e));
      throw failed.reason;
    }
    const [embeddings, encoder, decoder] = entries;
    const model = new Seq2Seq(config, partOf(embeddings, Embeddings), partOf(encoder, Encoder), partOf(decoder, Decoder));
    let released = false;
    return {
      model,
      release: () => {
        if (released) return;
        released = true;
        entries.forEach((e) => this.unclaim(e));
      },
    };
  }

  /**
   * Loads the entries of every direction, one direction at a time so only one is in use at once;
   * `prepare` sees each direction's model while it is held (engine workers build its engine).
   */
  async warm(dirs: Iterable<Direction>, prepare?: (model: Seq2Seq) => void): Promise<void> {
    for (const dir of dirs) {
      const lease = await this.acquire(dir);
      try {
        prepare?.(lease.model);
      } finally {
        lease.release();
      }
    }
  }

  stats(): CacheStats {
    let heldBytes = 0;
    for (const e of this.held.values()) heldBytes += e.bytes;
    return { entries: this.lru.size, bytes: this.lru.calculatedSize, heldBytes, ...this.counts, loadSeconds: [...this.recentLoads] };
  }

  /** Device bytes of each cached entry, by key. */
  entryBytes(): Record<string, number> {
    return Object.fromEntries([...this.lru.entries()].map(([key, entry]) => [key, entry.bytes]));
  }

  /** The cached entries' keys, most recently used first. */
  keys(): string[] {
    return [...this.lru.keys()];
  }

  /** Frees every entry not in use and refuses new acquires; entries in use are freed at their last release. */
  dispose(): void {
    this.disposed = true;
    this.lru.clear();
  }

  /** One use of the entry `key`: from the cache, from the entries held in use, from a load in flight, or loaded now. */
  private async claim(key: string, build: () => Promise<Part>): Promise<Entry> {
    const ready = this.lru.get(key) ?? this.held.get(key);
    if (ready !== undefined) {
      // Counted before anything else runs, so no eviction can free it under this acquire.
      ready.users++;
      this.count('hit', key);
      this.readmit(ready);
      return ready;
    }
    const inFlight = this.loading.get(key);
    if (inFlight !== undefined) {
      inFlight.claims.count++;
      this.count('hit', key);
      return inFlight.entry;
    }
    this.count('miss', key);
    const claims = { count: 1 };
    const entry = this.load(key, build, claims);
    this.loading.set(key, { claims, entry });
    return entry;
  }

  private async load(key: string, build: () => Promise<Part>, claims: { count: number }): Promise<Entry> {
    const started = performance.now();
    let part: Part;
    try {
      part = await build();
    } finally {
      // A failed load leaves nothing behind, so the next acquire of this key retries it.
      this.loading.delete(key);
    }
    const seconds = (performance.now() - started) / 1000;
    // Every acquire that joined the load uses the entry from the moment it exists.
    const entry: Entry = { key, part, bytes: part.bytes, users: claims.count };
    this.recentLoads.push(seconds);
    if (this.recentLoads.length > RECENT_LOADS) this.recentLoads.shift();
    this.onEvent({ type: 'load', key, bytes: entry.bytes, seconds });
    this.admit(entry);
    return entry;
  }

  /** The checkpoint serving `dir` and its name in cache keys ('' for a single checkpoint). */
  private sourceFor(dir: Direction): { name: string; source: TensorSource } {
    if (!(this.sources instanceof ModelSet)) return { name: '', source: this.sources };
    const member = this.sources.memberFor(dir);
    if (member === undefined) throw new Error(`the model does not serve ${dir.source}-${dir.target}`);
    return { name: member.name, source: member.reader };
  }

  private async loadEmbeddings(source: TensorSource): Promise<Embeddings> {
    const weights = await source.read(embeddingNames(source.config));
    return buildOrFree(weights, () => new Embeddings(source.config, weights));
  }

  /**
   * Reads component c's weights, extracted for `task` unless it is shared, and builds its stack. An
   * extracted stack's config marks it extracted; a shared one keeps the checkpoint's. Either way the
   * config depends only on the key, as one entry serves every direction that maps to it.
   */
  private async loadStack(source: TensorSource, c: Component, task: string | undefined): Promise<Encoder | Decoder> {
    const cfg = source.config;
    const config = task === undefined ? cfg : { ...cfg, extracted: { ...cfg.extracted, [c]: task } };
    const weights = await readComponent(source, c, task);
    return buildOrFree(weights, () => (c === 'encoder' ? new Encoder(config, weights) : new Decoder(config, weights)));
  }

  /** Puts an entry in the cache, or holds it outside when it cannot be cached. */
  private admit(entry: Entry): void {
    if (this.disposed || entry.bytes > this.budgetBytes) {
      // lru-cache would silently refuse an entry over its maxSize; held instead, it is shared by
      // concurrent users like any other entry and freed at its last release.
      this.held.set(entry.key, entry);
      return;
    }
    this.lru.set(entry.key, entry);
  }

  /** An entry evicted while in use and wanted again goes back in the cache rather than being loaded twice. */
  private readmit(entry: Entry): void {
    if (this.held.get(entry.key) !== entry || this.disposed || entry.bytes > this.budgetBytes) return;
    this.held.delete(entry.key);
    this.lru.set(entry.key, entry);
  }

  /** lru-cache's dispose callback: the entry is out of the cache (evicted, or cleared by dispose()). */
  private leftCache(entry: Entry, evicted: boolean): void {
    if (evicted) {
      this.counts.evictions++;
      this.onEvent({ type: 'evict', key: entry.key, bytes: entry.bytes });
    }
    if (entry.users > 0) this.held.set(entry.key, entry);
    else entry.part.dispose();
  }

  private unclaim(entry: Entry): void {
    entry.users--;
    if (entry.users === 0 && this.held.get(entry.key) === entry) {
      this.held.delete(entry.key);
      entry.part.dispose();
    }
  }

  private count(type: 'hit' | 'miss', key: string): void {
    this.counts[type === 'hit' ? 'hits' : 'misses']++;
    this.onEvent({ type, key });
  }
}

/** Builds a part from weights it then owns; if building fails the weights are freed. */
function buildOrFree<T>(weights: Weights, build: () => T): T {
  try {
    return build();
  } catch (err) {
    for (const t of weights.values()) t.dispose();
    throw err;
  }
}

/** The entry's part, checked to be of the kind its key promised. */
function partOf<T extends Part>(entry: Entry, kind: abstract new (...args: never[]) => T): T {
  if (!(entry.part instanceof kind)) throw new Error(`cache entry ${entry.key} holds the wrong kind of part`);
  return entry.part;
}
