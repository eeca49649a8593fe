// A server for tests: the default settings with one engine worker and every pair warmed.
import assert from 'node:assert/strict';
import { parseMetrics, sumMetric } from '../../src/bench/load.ts';
import { createServer, type TaskmoeServer } from '../../src/server/app.ts';
import { resolveSettings, type ServerSettings } from '../../src/server/settings.ts';
import { TEST_BACKEND_NAME, checkEngineBackend } from './backend.ts';

/** The defaults (no flags, no environment), one engine worker, every pair warmed, then `over`. */
export function testSettings(modelDir: string, over: Partial<ServerSettings> = {}): ServerSettings {
  return { ...resolveSettings({}, {}), modelDir, workers: 1, warm: 'all', ...over };
}

/**
 * A server on `modelDir` that has warmed up on this run's backend (checked; not listening: use
 * app.inject, or listen yourself).
 */
export async function startServer(modelDir: string, over: Partial<ServerSettings> = {}): Promise<TaskmoeServer> {
  const server = await createServer(testSettings(modelDir, over));
  await expectServerBackend(server);
  return server;
}

/**
 * Waits for the server to warm up, then checks that its engine decodes on `expected`: this run's
 * tfjs backend (TASKMOE_BACKEND, which its engine workers inherit), or ONNX_ENGINE for a test that
 * serves on ONNX Runtime. A server that fails the check is shut down (its engine workers would keep
 * the test process alive).
 */
export async function expectServerBackend(server: TaskmoeServer, expected: string = TEST_BACKEND_NAME): Promise<void> {
  await server.ready;
  try {
    const info = await server.app.inject('/info');
    assert.equal(info.statusCode, 200, `/info answers: ${info.body}`);
    checkEngineBackend(info.json(), expected, server.pool.health());
  } catch (err) {
    await server.shutdown();
    throw err;
  }
}

/**
 * The same check for a server in a child process (`taskmoe serve`) that answers at `url`; one that
 * fails it is stopped.
 */
export async function expectServedBackend(
  server: { url: string; stop(): unknown },
  expected: string = TEST_BACKEND_NAME,
): Promise<void> {
  try {
    const info = await fetch(`${server.url}/info`);
    assert.equal(info.status, 200, `${server.url}/info answers`);
    checkEngineBackend((await info.json()) as { engine: { backend?: string } }, expected);
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** Sum of a metric's series whose labels include `labels`, from the server's Prometheus registry. */
export async function metric(
  server: TaskmoeServer,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  return sumMetric(parseMetrics(await server.metrics.registry.metrics()), name, labels);
}
