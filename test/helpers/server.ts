// A server for tests: the default settings with one engine worker and every pair warmed.
import { parseMetrics, sumMetric } from '../../src/bench/load.ts';
import { createServer, type TaskmoeServer } from '../../src/server/app.ts';
import { resolveSettings, type ServerSettings } from '../../src/server/settings.ts';

/** The defaults (no flags, no environment), one engine worker, every pair warmed, then `over`. */
export function testSettings(modelDir: string, over: Partial<ServerSettings> = {}): ServerSettings {
  return { ...resolveSettings({}, {}), modelDir, workers: 1, warm: 'all', ...over };
}

/** A server on `modelDir` that has warmed up (not listening: use app.inject, or listen yourself). */
export async function startServer(modelDir: string, over: Partial<ServerSettings> = {}): Promise<TaskmoeServer> {
  const server = await createServer(testSettings(modelDir, over));
  await server.ready;
  return server;
}

/** Sum of a metric's series whose labels include `labels`, from the server's Prometheus registry. */
export async function metric(
  server: TaskmoeServer,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  return sumMetric(parseMetrics(await server.metrics.registry.metrics()), name, labels);
}
