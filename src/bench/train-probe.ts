// Child-process entry of the backend comparison: times the trainer on the backend that
// TASKMOE_BACKEND forces and writes the result as one JSON line on stdout. A process of its own
// because a thread's tfjs backend is chosen once.
import { initBackend } from '../backend/index.ts';
import { type TrainBenchOptions, benchTrain } from './train.ts';

const options = JSON.parse(process.argv[2] ?? '{}') as TrainBenchOptions;
try {
  await initBackend({ log: () => {} });
  const result = await benchTrain({ ...options, quiet: true });
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
