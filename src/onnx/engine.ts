// A model on ONNX Runtime: its encoder and decoder-step graphs in two sessions, driven by the
// same greedy and beam search as TensorFlow.js (src/models/decoding.ts) through DecoderEngine.
// The KV cache and the cross-attention keys/values stay ORT tensors: each step's present cache
// is fed back as the next step's past, never converted to JavaScript numbers.
import { type ModelConfig, targetVocabSize, taskKey, taskList } from '../models/config.ts';
import { type BeamCandidates, type DecoderEngine, type GreedyScores, groupsByLength } from '../models/engine.ts';
import type { Seq2Seq } from '../models/model.ts';
import type { Direction } from '../models/transformer.ts';
import { sentenceRoutedDecoderLayers, takesTask } from './graphs.ts';
import { type DecoderSessions, type OnnxGraphs, type PartSessionOptions, sessionsOf } from './parts.ts';
import {
  type HostRoutes,
  beamCandidates,
  concatRoutes,
  emptyCache,
  gatherRows,
  int64,
  pickRoutes,
  windowBias,
} from './rows.ts';
import { OrtSession, type SessionOptions, Tensor } from './session.ts';

/** What the decoder keeps across steps for a batch; rows as in transformer.ts's DecoderState. */
export interface OrtDecoderState {
  rows: number;
  /** Per row, its first self-attention cache column. */
  selfStart: number[];
  /** Per row, its source length; cross-attention covers srcLen, the longest. */
  srcLengths: number[];
  crossK: Tensor[]; // per layer [B, H, S, dh]
  crossV: Tensor[];
  selfK: Tensor[]; // per layer [B, H, C, dh]
  selfV: Tensor[];
  /** Per sentence-routed decoder layer, its routes [B, k]. */
  routes: Map<number, HostRoutes>;
  /** Per present-cache output, the buffer the next step writes into (see presentBuffers). */
  spare?: Map<string, Float32Array>;
}

/**
 * Whether steps write their present cache into preallocated buffers (TASKMOE_ONNX_CACHE=preallocated)
 * instead of taking the outputs the binding returns and feeding them back. Measured slower here
 * (docs/onnx.md, src/bench/onnx-kv-cache.ts), so off by default.
 */
const preallocate = () => process.env.TASKMOE_ONNX_CACHE === 'preallocated';

const columnsOf = (s: OrtDecoderState) => s.selfK[0].dims[2];
const srcLenOf = (s: OrtDecoderState) => s.crossK[0].dims[2];

export class OrtEngine implements DecoderEngine<OrtDecoderState> {
  private static readonly engines = new WeakMap<object, WeakMap<object, OrtEngine>>();
  private readonly routedLayers: number[];
  private readonly layers: number[];

  constructor(
    readonly config: ModelConfig,
    private readonly encoder: OrtSession,
    private readonly decoder: DecoderSessions,
  ) {
    this.routedLayers = sentenceRoutedDecoderLayers(config);
    this.layers = Array.from({ length: config.decoderLayers }, (_, i) => i);
  }

  static fromGraphs(graphs: OnnxGraphs, opts: SessionOptions = {}): OrtEngine {
    return new OrtEngine(graphs.config, new OrtSession(graphs.encoder, opts), {
      start: new OrtSession(graphs.decoderStart, opts),
      step: new OrtSession(graphs.decoderStep, opts),
    });
  }

  /** The engine of a model, its sessions built on first use of each part (encoder, decoder) and kept with the part. */
  static of(model: Seq2Seq, opts: PartSessionOptions = {}): OrtEngine {
    let byDecoder = OrtEngine.engines.get(model.encoder);
    if (byDecoder === undefined) OrtEngine.engines.set(model.encoder, (byDecoder = new WeakMap()));
    let engine = byDecoder.get(model.decoder);
    if (engine !== undefined) return engine;
    const { encoder, decoder } = sessionsOf(model, opts);
    byDecoder.set(model.decoder, (engine = new OrtEngine(model.config, encoder, decoder)));
    return engine;
  }

  // Task-embedding rows of a component's gates, one per sentence.
  private taskIds(component: 'encoder' | 'decoder', dirs: Direction[]): Tensor {
    const tasks = taskList(this.config, component);
    return int64(
      dirs.map((d) => {
        const t = tasks.indexOf(taskKey(this.config.routing[component], d.source, d.target)!);
        if (t < 0) throw new Error(`${component} has no task for ${d.source}-${d.target}`);
        return t;
      }),
    );
  }

  // One length group through the encoder and decoder-start graphs: cross keys/values and decoder routes of its sentences.
  private encode(sources: number[][], dirs: Direction[]): Record<string, Tensor> {
    const n = sources.length;
    const lengths = sources.map((s) => s.length);
    const srcLen = Math.max(...lengths);
    const valid = new Tensor(
      'float32',
      Float32Array.from(sources.flatMap((s) => Array.from({ length: srcLen }, (_, t) => (t < s.length ? 1 : 0)))),
      [n, srcLen],
    );
    const feeds: Record<string, Tensor> = {
      ids: int64(
        sources.flatMap((s) => [...s, ...new Array<number>(srcLen - s.length).fill(0)]),
        [n, srcLen],
      ),
      srcBias: windowBias(
        lengths.map(() => 0),
        lengths,
        srcLen,
      ),
      valid,
    };
    if (takesTask(this.config, 'encoder')) feeds.encTask = this.taskIds('encoder', dirs);
    const { memory } = this.encoder.run(feeds, ['memory']);
    const start: Record<string, Tensor> = { memory };
    if (this.decoder.start.inputNames.includes('valid')) start.valid = valid;
    if (takesTask(this.config, 'decoder')) start.decTask = this.taskIds('decoder', dirs);
    const fetch = [
      ...this.layers.flatMap((i) => [`crossK.${i}`, `crossV.${i}`]),
      ...this.routedLayers.flatMap((i) => [`routeExperts.${i}`, `routeGates.${i}`]),
    ];
    return this.decoder.start.run(start, fetch);
  }

  /** Encodes in groups of similar length (as the tfjs engine), then lays the rows out in source order. */
  start(sources: number[][], dirs: Direction[], rowsPerSentence = 1): OrtDecoderState {
    if (sources.length !== dirs.length) throw new Error(`${sources.length} sources but ${dirs.length} directions`);
    const groups = groupsByLength(sources);
    const outputs = groups.map((g) =>
      this.encode(
        g.map((i) => sources[i]),
        g.map((i) => dirs[i]),
      ),
    );
    const where = new Array<[number, number]>(sources.length); // source -> [group, row in group]
    groups.forEach((g, gi) => g.forEach((source, row) => (where[source] = [gi, row])));
    const srcLen = Math.max(...sources.map((s) => s.length));
    const repeated = (f: (s: number) => number) =>
      sources.flatMap((_, s) => new Array<number>(rowsPerSentence).fill(f(s)));
    // Sources are laid out row by row in order; each source's rows come from its group's output.
    const layout = (name: string): Tensor =>
      gatherRows(
        sources.flatMap((_, s) =>
          new Array(rowsPerSentence).fill({ src: outputs[where[s][0]][name], rows: [where[s][1]], from: 0 }),
        ),
        srcLen,
      );
    const k = this.config.moe.topK;
    const routes = new Map<number, HostRoutes>();
    for (const i of this.routedLayers) {
      const parts = repeated((s) => s).map((s) =>
        pickRoutes(
          {
            experts: outputs[where[s][0]][`routeExperts.${i}`].data as BigInt64Array,
            gates: outputs[where[s][0]][`routeGates.${i}`].data as Float32Array,
          },
          [where[s][1]],
          k,
        ),
      );
      routes.set(i, parts.reduce(concatRoutes));
    }
    const rows = sources.length * rowsPerSentence;
    const { numHeads: h, dModel: d } = this.config;
    return {
      rows,
      selfStart: new Array<number>(rows).fill(0),
      srcLengths: repeated((s) => sources[s].length),
      crossK: this.layers.map((i) => layout(`crossK.${i}`)),
      crossV: this.layers.map((i) => layout(`crossV.${i}`)),
      selfK: this.layers.map(() => emptyCache(rows, h, d / h)),
      selfV: this.layers.map(() => emptyCache(rows, h, d / h)),
      routes,
    };
  }

  // One decoder step for every row; the present cache becomes the state's.
  private run(state: OrtDecoderState, tokens: number[], fetch: string[], topK = 1): Record<string, Tensor> {
    if (tokens.length !== state.rows) throw new Error(`${tokens.length} tokens for ${state.rows} rows`);
    const columns = columnsOf(state);
    const positions = state.selfStart.map((s) => columns - s);
    if (Math.max(...positions) >= this.config.maxLength)
      throw new Error(`sequence of ${Math.max(...positions) + 1} tokens exceeds maxLength ${this.config.maxLength}`);
    const feeds: Record<string, Tensor> = {
      tokens: int64(tokens),
      positions: int64(positions),
      selfBias: windowBias(
        state.selfStart,
        state.selfStart.map(() => columns + 1),
        columns + 1,
      ),
      srcBias: windowBias(
        state.srcLengths.map(() => 0),
        state.srcLengths,
        srcLenOf(state),
      ),
      topK: int64([topK]),
    };
    for (const i of this.layers) {
      feeds[`pastK.${i}`] = state.selfK[i];
      feeds[`pastV.${i}`] = state.selfV[i];
      feeds[`crossK.${i}`] = state.crossK[i];
      feeds[`crossV.${i}`] = state.crossV[i];
    }
    const k = this.config.moe.topK;
    for (const [i, r] of state.routes) {
      feeds[`routeExperts.${i}`] = new Tensor('int64', r.experts, [state.rows, k]);
      feeds[`routeGates.${i}`] = new Tensor('float32', r.gates, [state.rows, k]);
    }
    const present = this.layers.flatMap((i) => [`presentK.${i}`, `presentV.${i}`]);
    const into = preallocate() ? this.presentBuffers(state, columns + 1) : {};
    const out = this.decoder.step.run(feeds, [...fetch, ...present], into);
    state.selfK = this.layers.map((i) => into[`presentK.${i}`] ?? out[`presentK.${i}`]);
    state.selfV = this.layers.map((i) => into[`presentV.${i}`] ?? out[`presentV.${i}`]);
    return out;
  }

  /**
   * Where the step writes its present cache: the spare buffer of each layer's ping-pong pair, grown
   * when too small, so the binding neither allocates nor copies the cache out of ORT each step.
   * The past cache's buffer becomes the spare for the next step.
   */
  private presentBuffers(state: OrtDecoderState, columns: number): Record<string, Tensor> {
    const [rows, h, , dh] = state.selfK[0].dims;
    const need = rows * h * columns * dh;
    const capacity = rows * h * Math.min(this.config.maxLength, Math.max(columns, 2 * columns, 16)) * dh;
    const into: Record<string, Tensor> = {};
    state.spare ??= new Map();
    for (const i of this.layers) {
      for (const [kind, past] of [
        ['K', state.selfK[i]],
        ['V', state.selfV[i]],
      ] as const) {
        const name = `present${kind}.${i}`;
        let spare = state.spare.get(name);
        if (spare === undefined || spare.length < need) spare = new Float32Array(capacity);
        into[name] = new Tensor('float32', spare.subarray(0, need), [rows, h, columns, dh]);
        const pastData = past.data as Float32Array;
        state.spare.set(name, new Float32Array(pastData.buffer, 0, pastData.buffer.byteLength / 4));
      }
    }
    return into;
  }

  logits(state: OrtDecoderState, tokens: number[]): Float32Array {
    return this.run(state, tokens, ['logits']).logits.data as Float32Array;
  }

  greedy(state: OrtDecoderState, tokens: number[]): GreedyScores {
    const out = this.run(state, tokens, ['best', 'bestLogProb']);
    return {
      best: Array.from(out.best.data as BigInt64Array, Number),
      bestLogProb: out.bestLogProb.data as Float32Array,
    };
  }

  /** Each row's best 2*beam log-probabilities come from the graph; rows.ts's beamCandidates merges a sentence's rows. */
  beam(state: OrtDecoderState, tokens: number[], liveLogProb: number[], beam: number): BeamCandidates {
    const out = this.run(state, tokens, ['topLogProbs', 'topTokens'], 2 * beam);
    return beamCandidates(
      out.topLogProbs.data as Float32Array,
      out.topTokens.data as BigInt64Array,
      liveLogProb,
      beam,
      targetVocabSize(this.config),
    );
  }

  /** a's rows then b's; the shorter cache gets zero columns in front, the shorter sources zeros behind. */
  merge(a: OrtDecoderState, b: OrtDecoderState): OrtDecoderState {
    const columns = Math.max(columnsOf(a), columnsOf(b));
    const srcLen = Math.max(srcLenOf(a), srcLenOf(b));
    const front = (s: OrtDecoderState) => columns - columnsOf(s);
    const all = (s: OrtDecoderState) => Array.from({ length: s.rows }, (_, r) => r);
    const join = (x: Tensor, y: Tensor, length: number, fromA: number, fromB: number) =>
      gatherRows(
        [
          { src: x, rows: all(a), from: fromA },
          { src: y, rows: all(b), from: fromB },
        ],
        length,
      );
    const routes = new Map<number, HostRoutes>();
    for (const [i, r] of a.routes) routes.set(i, concatRoutes(r, b.routes.get(i)!));
    return {
      rows: a.rows + b.rows,
      selfStart: [...a.selfStart.map((s) => s + front(a)), ...b.selfStart.map((s) => s + front(b))],
      srcLengths: [...a.srcLengths, ...b.srcLengths],
      crossK: a.crossK.map((k, i) => join(k, b.crossK[i], srcLen, 0, 0)),
      crossV: a.crossV.map((v, i) => join(v, b.crossV[i], srcLen, 0, 0)),
      selfK: a.selfK.map((k, i) => join(k, b.selfK[i], columns, -front(a), -front(b))),
      selfV: a.selfV.map((v, i) => join(v, b.selfV[i], columns, -front(a), -front(b))),
      routes,
    };
  }

  reorder(state: OrtDecoderState, rows: number[]): void {
    const columns = columnsOf(state);
    state.selfK = state.selfK.map((src) => gatherRows([{ src, rows, from: 0 }], columns));
    state.selfV = state.selfV.map((src) => gatherRows([{ src, rows, from: 0 }], columns));
  }

  /** Keeps the given rows; cache columns and source positions no kept row uses leave with the others. */
  keepRows(state: OrtDecoderState, rows: number[]): void {
    const selfStart = rows.map((r) => state.selfStart[r]);
    const srcLengths = rows.map((r) => state.srcLengths[r]);
    const first = Math.min(...selfStart);
    const columns = columnsOf(state) - first;
    const srcLen = Math.max(...srcLengths);
    const pick = (src: Tensor, from: number, length: number) => gatherRows([{ src, rows, from }], length);
    state.crossK = state.crossK.map((t) => pick(t, 0, srcLen));
    state.crossV = state.crossV.map((t) => pick(t, 0, srcLen));
    state.selfK = state.selfK.map((t) => pick(t, first, columns));
    state.selfV = state.selfV.map((t) => pick(t, first, columns));
    state.selfStart = selfStart.map((s) => s - first);
    state.srcLengths = srcLengths;
    state.routes = new Map([...state.routes].map(([i, r]) => [i, pickRoutes(r, rows, this.config.moe.topK)]));
    state.rows = rows.length;
  }

  /** The state holds only host memory, which the garbage collector frees. */
  disposeState(state: OrtDecoderState): void {
    state.selfK = [];
    state.selfV = [];
    state.crossK = [];
    state.crossV = [];
  }

  sharesWeightsWith(other: DecoderEngine): boolean {
    return other === this;
  }

  /** Frees the sessions (an engine from of() shares them with its model parts' other engines). */
  dispose(): void {
    this.encoder.dispose();
    this.decoder.start.dispose();
    this.decoder.step.dispose();
  }
}
