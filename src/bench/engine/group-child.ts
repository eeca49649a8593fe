// The child process of one engine-benchmark group (see group.ts): builds the group's models from
// random weights, then answers the parent's requests one at a time.
import * as tf from '@tensorflow/tfjs';
import type { Seq2Seq } from '../../models/model.ts';
import type { WithId } from '../../util/rpc.ts';
import { ensureBackend } from '../backend.ts';
import { DIRECTION, OUT_LEN, type Variant, benchConfigs, variantConfig } from './costs.ts';
import { mib } from './format.ts';
import type { ChildMessage, GroupJob, ModelInfo, Prepared, RequestBody } from './group.ts';
import { type StepProfile, timeDecode, warmAndProfile } from './measure.ts';
import { buildGroup, decoderParams, hostWeights, sources, wasmHeapBytes } from './models.ts';

/**
 * The child side: builds one group's models, then serves the parent's requests one at a time
 * (jit: one untimed decode() per model; prepare: one timed encode, then per model a warm-up of
 * WARMUP_STEPS decoder steps and PROFILED_STEPS profiled ones; run: one timed decode(); finish: dispose).
 */
async function serveGroup(job: GroupJob, send: (m: ChildMessage) => void): Promise<void> {
  const log = (line: string) => send({ type: 'log', line });
  const backend = await ensureBackend(log);
  const cfg = benchConfigs(job.quick)[job.config];
  const baseline = tf.memory().numTensors;
  let t0 = performance.now();
  const dense = job.variants.includes('dense');
  const host = hostWeights(variantConfig(cfg, dense ? 'dense' : 'task'), dense ? 2 : 1);
  const hostSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const models = await buildGroup(cfg, job.variants, host);
  host.clear();
  log(
    `  [${job.config} ${job.variants.join(', ')}] on ${backend.description}: random weights ${hostSeconds.toFixed(1)} s, built ${((performance.now() - t0) / 1000).toFixed(1)} s, heap ${mib(wasmHeapBytes())}`,
  );
  const infos: ModelInfo[] = [...models].map(([variant, m]) => ({
    variant,
    decoderParams: decoderParams(m),
    residentBytes: m.bytes,
    plainDecoder: m.decoder.experts.every((e) => e === undefined),
  }));
  const first = models.values().next().value as Seq2Seq;
  const handle = async (req: WithId<RequestBody>): Promise<unknown> => {
    if (req.cmd === 'finish') {
      for (const model of models.values()) model.dispose(); // shared tensors: disposing one twice is a no-op
      return { tensorsLeft: tf.memory().numTensors - baseline, heapBytes: wasmHeapBytes() };
    }
    const src = sources(req.batch, cfg.vocabSize, 1000 + req.batch);
    if (req.cmd === 'run') return timeDecode(models.get(req.variant)!, src, OUT_LEN);
    if (req.cmd === 'jit') {
      for (const model of models.values()) timeDecode(model, src, OUT_LEN);
      return null;
    }
    const dirs = src.map(() => DIRECTION);
    const t = performance.now();
    const enc = first.encoder.encode(first.embeddings, src, dirs); // every model of the group has this encoder
    enc.out.dataSync();
    const encodeSeconds = (performance.now() - t) / 1000;
    const profiles: Partial<Record<Variant, StepProfile>> = {};
    try {
      for (const [v, model] of models) profiles[v] = await warmAndProfile(model, cfg, enc, dirs);
    } finally {
      enc.out.dispose();
    }
    return { encodeSeconds, profiles, heapBytes: wasmHeapBytes() } satisfies Prepared;
  };
  process.on('message', (req: WithId<RequestBody>) => {
    handle(req).then(
      (data) => {
        send({ type: 'reply', id: req.id, data });
        if (req.cmd === 'finish') process.disconnect();
      },
      (err: Error) => send({ type: 'error', id: req.id, message: err.stack ?? String(err) }),
    );
  });
  send({ type: 'ready', models: infos });
}

const job = process.env.TASKMOE_BENCH_JOB;
if (job === undefined || process.send === undefined) {
  console.error(
    'group-child: started by the engine benchmark (GroupClient in group.ts), not by hand; run `taskmoe bench engine`',
  );
  process.exit(2);
}
const send = (m: ChildMessage) => process.send!(m);
try {
  await serveGroup(JSON.parse(job) as GroupJob, send);
} catch (err) {
  send({ type: 'error', message: (err as Error).stack ?? String(err) });
  process.disconnect();
}
