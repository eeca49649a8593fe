// Who may read /metrics: by default anyone on the API port (unchanged); with --metrics-token only
// a caller sending it as a bearer token; with --metrics-port only callers of a port of its own,
// so the API port shows no internals.
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { ServerMetrics } from './metrics.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Whether an Authorization header carries the token (compared in constant time). */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m !== null && timingSafeEqual(digest(m[1]), digest(token));
}

/** GET /metrics on `app`, wanting the bearer token when one is set. */
export function addMetricsRoute(app: FastifyInstance, metrics: ServerMetrics, token: string): void {
  app.get('/metrics', async (req, reply) => {
    if (token !== '' && !bearerMatches(req.headers.authorization, token)) {
      const error =
        '/metrics needs the header "Authorization: Bearer <token>" (--metrics-token / TASKMOE_METRICS_TOKEN)';
      return reply.code(401).header('www-authenticate', 'Bearer realm="taskmoe metrics"').send({ error });
    }
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}

/** The app of --metrics-port: /metrics alone. */
export function createMetricsApp(metrics: ServerMetrics, token: string): FastifyInstance {
  const app = Fastify({ forceCloseConnections: true });
  addMetricsRoute(app, metrics, token);
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: `no route ${req.method} ${req.url} (this port serves /metrics)` }),
  );
  return app;
}
