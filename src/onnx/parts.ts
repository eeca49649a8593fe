// A model's ONNX Runtime sessions, built per model part and kept with it: sub-networks of one
// cache that share an encoder share its session, and a part's sessions are released when the
// sub-network cache disposes the part (evicted and unused), not left to the garbage collector.
import type { ModelConfig } from '../models/config.ts';
import { onDispose } from '../models/embeddings.ts';
import type { Seq2Seq } from '../models/model.ts';
import { type HostWeights, decoderStartGraph, decoderStepGraph, encoderGraph } from './graphs.ts';
import { OrtSession, type SessionOptions } from './session.ts';

/** The three graphs of a model, ready to load into sessions or to write out (export). */
export interface OnnxGraphs {
  config: ModelConfig;
  encoder: Uint8Array;
  decoderStart: Uint8Array;
  decoderStep: Uint8Array;
}

export interface DecoderSessions {
  start: OrtSession;
  step: OrtSession;
}

export interface ModelSessions {
  encoder: OrtSession;
  decoder: DecoderSessions;
}

export interface PartSessionOptions extends SessionOptions {
  /**
   * Free the encoder's and decoder's tfjs tensors once their sessions hold the weights (serving:
   * nothing runs them on tfjs any more), and the embeddings' derived ones (transposed output table,
   * positions). The stored embeddings stay: every decoder graph built later reads them.
   */
  dropTfjs?: boolean;
}

// A model's float32 weights on the host (tfjs tensors are read once).
function hostWeightsOf(model: Seq2Seq): HostWeights {
  return new Map([...model.weights].map(([name, t]) => [name, { data: t.dataSync() as Float32Array, shape: t.shape }]));
}

export function graphsOf(model: Seq2Seq): OnnxGraphs {
  const cfg = model.config;
  const w = hostWeightsOf(model);
  return {
    config: cfg,
    encoder: encoderGraph(cfg, w),
    decoderStart: decoderStartGraph(cfg, w),
    decoderStep: decoderStepGraph(cfg, w),
  };
}

const encoders = new WeakMap<object, OrtSession>();
const decoders = new WeakMap<object, DecoderSessions>();

/** The sessions of a model's encoder and decoder, each built on first use of its part. */
export function sessionsOf(model: Seq2Seq, opts: PartSessionOptions = {}): ModelSessions {
  const cfg = model.config;
  let weights: HostWeights | undefined;
  const w = () => (weights ??= hostWeightsOf(model));
  let encoder = encoders.get(model.encoder);
  if (encoder === undefined) {
    const session = (encoder = new OrtSession(encoderGraph(cfg, w()), opts));
    encoders.set(model.encoder, session);
    onDispose(model.encoder, () => session.dispose());
  }
  let decoder = decoders.get(model.decoder);
  if (decoder === undefined) {
    const sessions = (decoder = {
      start: new OrtSession(decoderStartGraph(cfg, w()), opts),
      step: new OrtSession(decoderStepGraph(cfg, w()), opts),
    });
    decoders.set(model.decoder, sessions);
    onDispose(model.decoder, () => {
      sessions.start.dispose();
      sessions.step.dispose();
    });
  }
  if (opts.dropTfjs) {
    if (!model.encoder.tensorsDropped) model.encoder.dropTensors();
    if (!model.decoder.tensorsDropped) model.decoder.dropTensors();
    model.embeddings.dropDerived();
  }
  return { encoder, decoder };
}
