// A data-parallel training worker: its own tfjs backend and a replica of the model. For each shard
// it loads the coordinator's current weights, differentiates the shard's loss and writes the
// gradients into its shared buffer.
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.ts';
import type { FromTrainWorker, ToTrainWorker, TrainWorkerData } from './parallel.ts';
import { Replica } from './trainer.ts';
import type { WithId } from '../util/rpc.ts';

const port = parentPort!;
const data = workerData as TrainWorkerData;
const send = (msg: FromTrainWorker) => port.postMessage(msg);

async function main(): Promise<void> {
  await initBackend({ force: data.backend, log: () => {} });
  const weights = new Float32Array(data.weights);
  const grads = new Float32Array(data.grads);
  // Copies out of the shared buffer: a backend may keep the array it is given, which the coordinator overwrites.
  const current = (slot: TrainWorkerData['layout'][number]) =>
    tf.tensor(weights.slice(slot.offset, slot.offset + slot.size), slot.shape);
  const replica = Replica.fromWeights(
    data.cfg,
    data.settings,
    data.specialIds,
    new Map(data.layout.map((slot) => [slot.name, current(slot)])),
  );
  send({ type: 'ready' });

  port.on('message', (msg: WithId<ToTrainWorker>) => {
    try {
      for (const slot of data.layout) {
        const v = replica.variables.get(slot.name)!;
        tf.tidy(() => v.assign(current(slot)));
      }
      const result = replica.gradients(msg.batch);
      const present = new Uint8Array(data.layout.length);
      data.layout.forEach((slot, i) => {
        const g = result.grads.get(slot.name);
        if (g === undefined) return;
        grads.set(g.dataSync() as Float32Array, slot.offset);
        present[i] = 1;
      });
      tf.dispose([...result.grads.values()]);
      send({
        type: 'done',
        id: msg.id,
        loss: result.loss,
        crossEntropy: result.crossEntropy,
        balance: result.balance,
        present,
      });
    } catch (err) {
      send({ type: 'error', id: msg.id, message: err instanceof Error ? err.message : String(err) });
    }
  });
}

main().catch((err: unknown) => send({ type: 'fatal', message: err instanceof Error ? err.message : String(err) }));
