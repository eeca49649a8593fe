// `taskmoe serve`: start the server, and on SIGTERM/SIGINT drain it and exit 0.
import { createServer } from './app.ts';
import { type ServerSettings } from './settings.ts';

export async function serve(settings: ServerSettings, log: (msg: string) => void): Promise<void> {
  const started = performance.now();
  const server = await createServer(settings, log);
  // Listen first: /healthz answers and /readyz says 503 while the workers warm up.
  const address = await server.app.listen({ port: settings.port, host: settings.host });
  if (server.metricsApp !== undefined) {
    log(
      `taskmoe: /metrics on ${await server.metricsApp.listen({ port: Number(settings.metricsPort), host: settings.host })}`,
    );
  }
  try {
    await server.ready;
  } catch (err) {
    await server.shutdown();
    throw err;
  }
  log(
    `taskmoe: serving ${settings.modelDir} on ${address} with ${server.pool.size} engine workers (ready in ${((performance.now() - started) / 1000).toFixed(1)} s)`,
  );
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log(`taskmoe: ${signal}: draining (grace ${settings.drainGraceMs} ms)`);
      server.shutdown().then(resolve, (err: unknown) => {
        log(`taskmoe: error while shutting down: ${(err as Error).message}`);
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log('taskmoe: stopped');
  // Exit now rather than when the event loop empties: the natural exit also tears down the main
  // thread's V8 heap page by page, which takes a few hundred ms here, past the drain's budget.
  process.exit(0);
}
