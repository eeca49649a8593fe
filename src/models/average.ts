// Checkpoint averaging (Vaswani et al. 2017, fairseq's average_checkpoints): the element-wise
// mean of the weights of several checkpoints of one training run. Late checkpoints of a run
// trained with small, noisy batches scatter around a better point; their mean usually
// translates better than any one of them.
import * as tf from '@tensorflow/tfjs';
import { CheckpointError, CheckpointReader, type StorageDtype, writeCheckpoint } from './checkpoint.ts';
import { tensorShapes } from './config.ts';
import { verifyCheckpoint } from './verify.ts';

/** Writes to `out` the mean of the checkpoints in `dirs`, which must share one model config. */
export async function averageCheckpoints(dirs: string[], out: string, dtype?: StorageDtype, warn: (msg: string) => void = console.error): Promise<void> {
  if (dirs.length === 0) throw new CheckpointError('averaging needs at least one checkpoint');
  const readers = await Promise.all(dirs.map((dir) => CheckpointReader.open(dir)));
  for (const reader of readers) await verifyCheckpoint(reader, warn);
  const first = readers[0]!;
  const config = JSON.stringify(first.config);
  for (const reader of readers.slice(1)) {
    if (JSON.stringify(reader.config) !== config) {
      throw new CheckpointError(`cannot average ${reader.dir} with ${first.dir}: their model configs differ`);
    }
  }
  const mean = new Map<string, tf.Tensor>();
  try {
    // One tensor at a time, so memory holds one model's worth of weights, not one per checkpoint.
    for (const name of tensorShapes(first.config).keys()) {
      let sum: tf.Tensor | undefined;
      for (const reader of readers) {
        const [t] = (await reader.read([name])).values();
        const next = sum === undefined ? t! : tf.add(sum, t!);
        if (sum !== undefined) tf.dispose([sum, t!]);
        sum = next;
      }
      mean.set(name, tf.tidy(() => tf.div(sum!, readers.length)));
      sum!.dispose();
    }
    await writeCheckpoint(out, first.config, mean, first.tokenizerPath, dtype ?? first.dtype, first.extraFiles);
  } finally {
    tf.dispose([...mean.values()]);
  }
}
