// Continuous (iteration-level) batching of one engine's translation jobs. Greedy jobs of a pair
// join that pair's running GreedyBatch between decoder steps while it has room (maxRows), and
// each job is answered as soon as its own sentences finish; the batches of different pairs take
// steps in turn. Between steps the event loop runs, so jobs that arrive meanwhile can join.
// Beam-search jobs decode on their own, whole, when their turn comes.
import { GreedyBatch } from '../models/decoding.ts';
import type { Seq2Seq } from '../models/model.ts';
import type { Direction } from '../models/transformer.ts';
import type { TranslateOptions, Translation, Translator } from './index.ts';

interface Job {
  translator: Translator;
  sources: number[][];
  dir: Direction;
  options: TranslateOptions;
  results: Translation[];
  unfinished: number;
  resolve: (translations: Translation[]) => void;
  reject: (error: unknown) => void;
}

interface Running {
  model: Seq2Seq;
  batch: GreedyBatch<{ job: Job; index: number }>;
  jobs: Set<Job>;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class TranslationScheduler {
  private waiting: Job[] = [];
  /** The running greedy batch of each pair. */
  private readonly running = new Map<string, Running>();
  private looping = false;

  /** maxRows: sentences a running batch may hold before later jobs wait (a job alone may exceed it). */
  constructor(private readonly maxRows: number) {}

  /** Translates sources already encoded by translator.encode(); resolves once all of them are done. */
  translate(translator: Translator, sources: number[][], dir: Direction, options: TranslateOptions = {}): Promise<Translation[]> {
    if (sources.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.waiting.push({ translator, sources, dir, options, results: new Array(sources.length), unfinished: sources.length, resolve, reject });
      if (!this.looping) void this.loop();
    });
  }

  private async loop(): Promise<void> {
    this.looping = true;
    try {
      while (this.waiting.length > 0 || this.running.size > 0) {
        this.admit();
        for (const [pair, running] of this.running) this.step(pair, running);
        await nextTurn();
      }
    } finally {
      this.looping = false;
    }
  }

  /** Starts the waiting jobs that can start, in arrival order; a pair's later jobs never overtake its earlier ones. */
  private admit(): void {
    const blocked = new Set<string>();
    this.waiting = this.waiting.filter((job) => {
      const pair = `${job.dir.source}-${job.dir.target}`;
      if (blocked.has(pair)) return true;
      if ((job.options.beamSize ?? 1) > 1) {
        settle(job, () => job.translator.translateIds(job.sources, job.dir, job.options));
        return false;
      }
      let running = this.running.get(pair);
      const fits = running !== undefined && running.model === job.translator.model && running.batch.size + job.sources.length <= this.maxRows;
      if (running !== undefined && !fits) {
        blocked.add(pair);
        return true;
      }
      if (running === undefined) {
        const { bosId, eosId } = job.translator.tokenizer;
        running = { model: job.translator.model, batch: new GreedyBatch(job.translator.model, { bosId, eosId }), jobs: new Set() };
        this.running.set(pair, running);
      }
      const { batch, jobs } = running;
      const failed = settleOnError(job, () => batch.add(job.sources, job.sources.map(() => job.dir), job.sources.map((_, index) => ({ job, index })), job.options.maxLength));
      if (!failed) jobs.add(job);
      if (batch.size === 0) this.stop(pair, running);
      return false;
    });
  }

  /** One decoder step of a pair's batch; answers the jobs whose last sentence finished. A failed step fails every job in the batch. */
  private step(pair: string, running: Running): void {
    try {
      for (const { tag: { job, index }, hypothesis } of running.batch.step()) {
        job.results[index] = job.translator.translation([hypothesis]);
        if (--job.unfinished === 0) {
          running.jobs.delete(job);
          job.resolve(job.results);
        }
      }
    } catch (error) {
      for (const job of running.jobs) job.reject(error);
      running.jobs.clear();
    }
    if (running.jobs.size === 0) this.stop(pair, running);
  }

  private stop(pair: string, running: Running): void {
    running.batch.dispose();
    this.running.delete(pair);
  }
}

function settle(job: Job, run: () => Translation[]): void {
  try {
    job.resolve(run());
  } catch (error) {
    job.reject(error);
  }
}

/** Runs `add`; on an error rejects the job and returns true. */
function settleOnError(job: Job, add: () => void): boolean {
  try {
    add();
    return false;
  } catch (error) {
    job.reject(error);
    return true;
  }
}
