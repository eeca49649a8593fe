// TensorFlow's native backend (tfjs-node, built by scripts/build-tfjs-node.sh) against wasm: the
// demo model must translate alike on both. Skipped where tfjs-node is not built.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';

const ENTRY = path.join(import.meta.dirname, 'helpers', 'cli-entry.ts');
const loads = spawnSync(process.execPath, ['-e', "require('@tensorflow/tfjs-node')"], { stdio: 'ignore' }).status === 0;
const skip = loads ? false : '@tensorflow/tfjs-node is not built here (scripts/build-tfjs-node.sh)';

const SENTENCES = ['Save changes before closing?', 'Could not open file "%s".', 'The document has been modified.', 'Permission denied', 'Select All'];

function translate(backend: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'translate', ...args], { env: { ...process.env, TASKMOE_BACKEND: backend } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(SENTENCES.join('\n') + '\n');
  });
}

test('TASKMOE_BACKEND=node loads tfjs-node, and the demo model translates as on wasm (greedy and beam)', { skip }, async () => {
  for (const args of [['--source', 'en', '--target', 'de'], ['--source', 'en', '--target', 'fr', '--beam', '4']]) {
    const native = await translate('node', args);
    const wasm = await translate('wasm', args);
    assert.equal(native.code, 0, native.stderr);
    assert.match(native.stderr, /tfjs backend tensorflow \(@tensorflow\/tfjs-node\)/);
    assert.equal(native.stdout.trim().split('\n').length, SENTENCES.length);
    assert.equal(native.stdout, wasm.stdout);
  }
});
