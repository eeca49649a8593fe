import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { TEST_BACKEND, checkLoggedBackend } from './backend.ts';

const ENTRY = path.join(import.meta.dirname, 'cli-entry.ts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `taskmoe args...` in a child process on the test run's backend (or `backend`), feeding
 * `stdin`; rejects if the child logs another tfjs backend than the one it was forced to.
 */
export function runCli(args: string[], stdin = '', backend: string = TEST_BACKEND): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], {
      env: { ...process.env, TASKMOE_BACKEND: backend },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        checkLoggedBackend(stderr, backend);
        resolve({ code: code ?? -1, stdout, stderr });
      } catch (err) {
        reject(err as Error);
      }
    });
    child.stdin.end(stdin);
  });
}
