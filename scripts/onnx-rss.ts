// Resident memory of a model served on ONNX Runtime, with and without freeing the tfjs copies of
// its encoder and decoder once the sessions hold the weights (what serving does: parts.ts dropTfjs).
// Each mode runs in a child process: load a checkpoint, build its ONNX Runtime engine, then load
// and build a second copy (a second cached sub-network), printing RSS after each step. The children
// run with glibc's mmap threshold fixed at 128 KiB, so a freed weight buffer goes back to the
// system at once instead of staying in the heap (glibc raises the threshold as big blocks are freed),
// and RSS shows what is held.
//
//   node --expose-gc --import tsx scripts/onnx-rss.ts [--model /tmp/taskmoe-opus-shaped/taskmoe]
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/backend/index.ts';
import { CheckpointReader } from '../src/models/checkpoint.ts';
import { Seq2Seq } from '../src/models/model.ts';
import { OrtEngine } from '../src/onnx/engine.ts';

const { values } = parseArgs({
  options: { model: { type: 'string', default: '/tmp/taskmoe-opus-shaped/taskmoe' }, mode: { type: 'string' } },
});
const mib = () => {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss / 2 ** 20;
};

if (values.mode === undefined) {
  const rows = ['keep', 'drop'].map((mode) => {
    const out = execFileSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', import.meta.filename, '--model', values.model!, '--mode', mode],
      {
        encoding: 'utf8',
        env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' },
      },
    );
    return JSON.parse(out.trim().split('\n').pop()!) as Record<string, number | string>;
  });
  console.log(`RSS (MiB) of ${values.model}, tfjs backend ${rows[0].backend}, ONNX Runtime engine built per copy`);
  console.log(
    'tfjs copies of the stacks | after init | 1st copy loaded (tfjs) | + its ORT sessions | 2nd copy loaded and built | weights (MiB, one copy)',
  );
  console.log('--- | --- | --- | --- | --- | ---');
  for (const r of rows) {
    const f = (k: string) => (r[k] as number).toFixed(0);
    console.log(
      `${r.mode === 'drop' ? 'freed (serving)' : 'kept'} | ${f('init')} | ${f('loaded')} | ${f('built')} | ${f('second')} | ${f('weights')}`,
    );
  }
} else {
  const backend = await initBackend({ log: () => {} });
  const drop = values.mode === 'drop';
  const report: Record<string, number | string> = { mode: values.mode, backend: backend.name, init: mib() };
  const first = await Seq2Seq.load(await CheckpointReader.open(values.model!));
  report.weights = first.bytes / 2 ** 20;
  report.loaded = mib();
  OrtEngine.of(first, { dropTfjs: drop });
  report.built = mib();
  const second = await Seq2Seq.load(await CheckpointReader.open(values.model!));
  OrtEngine.of(second, { dropTfjs: drop });
  report.second = mib();
  console.log(JSON.stringify(report));
}
