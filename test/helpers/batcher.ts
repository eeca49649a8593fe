// The batcher's test harness: a fake clock, a runner whose batches the test finishes, and small helpers.
import assert from 'node:assert/strict';
import { Batcher, type BatcherOptions, type BatchItem, type Clock, type QueueKey } from '../../src/batching/index.ts';

// Lets promise chains (run results → request settlement → next dispatch) run to completion.
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Time stands still until `advance`, which fires due timers in order. */
export class FakeClock implements Clock {
  private time = 1_000_000;
  private timers: { dueAt: number; callback: () => void }[] = [];

  now(): number {
    return this.time;
  }

  setTimer(callback: () => void, delayMs: number): () => void {
    const timer = { dueAt: this.time + Math.max(0, delayMs), callback };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((pending) => pending !== timer);
    };
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    for (let next = this.nextDue(target); next; next = this.nextDue(target)) {
      this.timers = this.timers.filter((pending) => pending !== next);
      this.time = next.dueAt;
      next.callback();
      await flush();
    }
    this.time = target;
    await flush();
  }

  private nextDue(limit: number): { dueAt: number; callback: () => void } | undefined {
    const due = this.timers.filter((timer) => timer.dueAt <= limit);
    return due.sort((a, b) => a.dueAt - b.dueAt)[0];
  }
}

/** A test item: its payload names it in the results. */
export interface Item extends BatchItem {
  payload: string;
}

/** A key per pair; `id` tells keys of one pair apart (e.g. by decoding options). */
export function key(pair: string, id = pair): QueueKey {
  return { pair, id };
}

export interface RunCall {
  pair: string;
  items: Item[];
  signal: AbortSignal;
  lane: number;
  /** Resolves with `pair:payload` for each item, so mapping mistakes show in the results. */
  succeed(): void;
  fail(error: Error): void;
}

function fakeRunner(): { calls: RunCall[]; run: BatcherOptions<QueueKey, Item, string>['run'] } {
  const calls: RunCall[] = [];
  const run = ({ pair }: QueueKey, items: Item[], signal: AbortSignal, lane: number): Promise<string[]> =>
    new Promise((resolve, reject) => {
      calls.push({
        pair,
        items,
        signal,
        lane,
        succeed: () => resolve(items.map((item) => `${pair}:${String(item.payload)}`)),
        fail: reject,
      });
    });
  return { calls, run };
}

export function setup(options: Partial<BatcherOptions<QueueKey, Item, string>> = {}) {
  const clock = new FakeClock();
  const runner = fakeRunner();
  const batcher = new Batcher<QueueKey, Item, string>({ run: runner.run, clock, maxDelayMs: 10, ...options });
  return { clock, runner, batcher };
}

export function items(...payloads: string[]): Item[] {
  return payloads.map((payload) => ({ tokens: 1, payload }));
}

export function payloadsOf(call: RunCall | undefined): unknown[] {
  assert.ok(call, 'expected a run call');
  return call.items.map((item) => item.payload);
}

export interface Outcome<T> {
  settled: boolean;
  value?: T;
  error?: unknown;
}

// Attaches handlers at once so that a rejection is never "unhandled" while a test waits.
export function track<T>(promise: Promise<T>): Outcome<T> {
  const outcome: Outcome<T> = { settled: false };
  promise.then(
    (value) => Object.assign(outcome, { settled: true, value }),
    (error: unknown) => Object.assign(outcome, { settled: true, error }),
  );
  return outcome;
}
