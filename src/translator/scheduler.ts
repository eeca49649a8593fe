// Continuous (iteration-level) batching of one engine's translation jobs. A greedy job joins the
// running GreedyBatch of its sub-network between decoder steps while that has room (maxRows), and
// is answered as soon as its own sentences finish; batches of different sub-networks take steps in
// turn. Jobs of different pairs share a batch when they run on the same weights (with Token/Target,
// every pair into one target language). Between steps the event loop runs, so jobs that arrive
// meanwhile can join. A beam-search job decodes as a batch of its own, stepping in turn with the
// others. A job whose caller gives up (its signal aborts) leaves at the next step, so no step is
// spent on it.
//
// Engine time is shared fairly between pairs: each turn steps the running batch whose flow (its
// pair) has been charged least, a step costing its rows (sentences x beam). A heavy beam request
// of one pair therefore takes one step while another pair's short request takes as many steps as
// fit in the same rows, instead of every running batch stepping once per turn; a pair that starts
// gets one heavy step's rows of credit, so its short request runs before the heavy one steps again.
import { BeamSearch, GreedyBatch } from '../models/decoding.ts';
import type { DecoderEngine } from '../models/engine.ts';
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
  /** The fairness account it is charged to: its first job's pair. */
  flow: string;
  engine: DecoderEngine;
  batch: GreedyBatch<{ job: Job; index: number }>;
  jobs: Set<Job>;
}

interface RunningBeam {
  flow: string;
  job: Job;
  search: BeamSearch;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** What one step of a running batch costs: its rows (sentences x beam). */
const rowsOf = (u: Running | RunningBeam): number => Math.max(1, 'search' in u ? u.search.rows : u.batch.size);

/** The caller aborted the job: its sentences were dropped unfinished. */
export class JobCancelledError extends Error {
  constructor() {
    super('the translation was cancelled');
  }
}

export class TranslationScheduler {
  private waiting: Job[] = [];
  /** The running greedy batches, one per sub-network. */
  private running: Running[] = [];
  private beams: RunningBeam[] = [];
  private looping = false;
  /** Rows stepped per flow while it has running batches; a flow that starts is charged the least of the others. */
  private readonly charged = new Map<string, number>();
  /** Steps taken, and the step each batch last took (ties between equally charged batches go to the one that waited longest). */
  private steps = 0;
  private readonly lastStep = new WeakMap<Running | RunningBeam, number>();

  /** maxRows: sentences a running batch may hold before later jobs wait (a job alone may exceed it). */
  constructor(private readonly maxRows: number) {}

  /**
   * Translates sources already encoded by translator.encode(); resolves once all of them are done.
   * Aborting `signal` drops the job's unfinished sentences and rejects with JobCancelledError.
   */
  translate(
    translator: Translator,
    sources: number[][],
    dir: Direction,
    options: TranslateOptions = {},
    signal?: AbortSignal,
  ): Promise<Translation[]> {
    if (signal?.aborted) return Promise.reject(new JobCancelledError());
    if (sources.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      const onAbort = () => this.cancel(job);
      const settled = () => signal?.removeEventListener('abort', onAbort);
      const job: Job = {
        translator,
        sources,
        dir,
        options,
        results: new Array(sources.length),
        unfinished: sources.length,
        resolve: (translations) => {
          settled();
          resolve(translations);
        },
        reject: (error) => {
          settled();
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(job);
      if (!this.looping) void this.loop();
    });
  }

  /** Drops a job whose caller gave up: from the waiting list, or its rows from its running batch. */
  private cancel(job: Job): void {
    this.waiting = this.waiting.filter((waiting) => waiting !== job);
    const running = this.running.find((r) => r.jobs.has(job));
    if (running !== undefined) {
      running.batch.cancel((tag) => tag.job === job);
      running.jobs.delete(job);
      if (running.jobs.size === 0) this.stop(running);
    }
    const beam = this.beams.find((b) => b.job === job);
    if (beam !== undefined) this.stopBeam(beam);
    job.reject(new JobCancelledError());
  }

  private async loop(): Promise<void> {
    this.looping = true;
    try {
      while (this.waiting.length > 0 || this.running.length > 0 || this.beams.length > 0) {
        this.admit();
        this.stepNext();
        await nextTurn();
      }
    } finally {
      this.looping = false;
    }
  }

  /** One step of the running batch whose flow has been charged least, charged its rows. */
  private stepNext(): void {
    const units: (Running | RunningBeam)[] = [...this.running, ...this.beams];
    if (units.length === 0) return;
    // A flow that starts is charged the least of the others less one step of the largest running
    // batch: a short request takes that many rows of its own steps before a heavy batch steps again,
    // rather than waiting a heavy step for each step of its own.
    const floor = Math.min(...[...this.charged.values()]);
    const credit = Math.max(...units.map(rowsOf));
    for (const u of units)
      if (!this.charged.has(u.flow)) this.charged.set(u.flow, Number.isFinite(floor) ? floor - credit : 0);
    const order = (u: Running | RunningBeam) => [this.charged.get(u.flow)!, this.lastStep.get(u) ?? -1];
    const next = units.reduce((best, u) => {
      const [a, b] = order(u);
      const [c, d] = order(best);
      return a < c || (a === c && b < d) ? u : best;
    });
    this.lastStep.set(next, this.steps++);
    this.charged.set(next.flow, this.charged.get(next.flow)! + rowsOf(next));
    if ('search' in next) this.stepBeam(next);
    else this.step(next);
    // A flow with nothing running leaves the accounts; when it returns it starts level with the others.
    const active = new Set([...this.running, ...this.beams].map((u) => u.flow));
    for (const flow of this.charged.keys()) if (!active.has(flow)) this.charged.delete(flow);
  }

  /** Starts the waiting jobs that can start, in arrival order; a batch's later jobs never overtake its earlier ones. */
  private admit(): void {
    const full = new Set<Running>();
    // One new beam search per turn: its encoder runs in its constructor, so two at once would hold
    // every other pair's steps back for both.
    let beamStarted = false;
    this.waiting = this.waiting.filter((job) => {
      if ((job.options.beamSize ?? 1) > 1) {
        if (beamStarted) return true;
        beamStarted = true;
        const { translator, sources, dir, options } = job;
        attempt(job, () =>
          this.beams.push({
            flow: flowOf(job),
            job,
            search: new BeamSearch(
              translator.engine,
              sources,
              sources.map(() => dir),
              translator.decodeOptions(options),
            ),
          }),
        );
        return false;
      }
      const engine = job.translator.engine;
      let running = this.running.find((r) => r.engine.sharesWeightsWith(engine));
      if (running !== undefined && (full.has(running) || running.batch.size + job.sources.length > this.maxRows)) {
        full.add(running);
        return true;
      }
      if (running === undefined) {
        running = {
          flow: flowOf(job),
          engine,
          batch: new GreedyBatch(engine, job.translator.decodeOptions({})),
          jobs: new Set(),
        };
        this.running.push(running);
      }
      const { batch, jobs } = running;
      if (
        attempt(job, () =>
          batch.add(
            job.sources,
            job.sources.map(() => job.dir),
            job.sources.map((_, index) => ({ job, index })),
            job.options.maxLength,
          ),
        )
      )
        jobs.add(job);
      if (batch.size === 0) this.stop(running);
      return false;
    });
  }

  /** One decoder step of a running batch; answers the jobs whose last sentence finished. A failed step fails every job in the batch. */
  private step(running: Running): void {
    try {
      for (const {
        tag: { job, index },
        hypothesis,
      } of running.batch.step()) {
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
    if (running.jobs.size === 0) this.stop(running);
  }

  /** One decoder step of a beam search; answers its job when it is done. */
  private stepBeam(beam: RunningBeam): void {
    const { job, search } = beam;
    const stepped = attempt(job, () => search.step());
    if (stepped && !search.done) return;
    if (stepped) job.resolve(search.results().map((hyps) => job.translator.translation(hyps)));
    this.stopBeam(beam);
  }

  private stopBeam(beam: RunningBeam): void {
    beam.search.dispose();
    this.beams = this.beams.filter((b) => b !== beam);
  }

  private stop(running: Running): void {
    running.batch.dispose();
    this.running = this.running.filter((r) => r !== running);
  }
}

function flowOf(job: Job): string {
  return `${job.dir.source}-${job.dir.target}`;
}

/** Runs `work`; an error rejects the job. Returns whether it succeeded. */
function attempt(job: Job, work: () => void): boolean {
  try {
    work();
    return true;
  } catch (error) {
    job.reject(error);
    return false;
  }
}
