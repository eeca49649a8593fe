import { spawn } from 'node:child_process';
import * as path from 'node:path';

const ENTRY = path.join(import.meta.dirname, 'cli-entry.ts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `taskmoe args...` in a child process on the wasm backend (or `backend`), feeding `stdin`. */
export function runCli(args: string[], stdin = '', backend = 'wasm'): Promise<CliResult> {
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
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}
