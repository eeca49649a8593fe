// The playground: static files from web/playground (in the package; no CDN), the page at /.
import * as path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/** web/playground, from src/server/front-door or dist/server/front-door alike. */
export const PLAYGROUND_DIR = path.resolve(import.meta.dirname, '../../../web/playground');

// The page runs only its own script and talks only to this server.
const PAGE_CSP =
  "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export async function registerPlayground(app: FastifyInstance): Promise<void> {
  await app.register(fastifyStatic, {
    root: PLAYGROUND_DIR,
    prefix: '/static/',
    // One route per file, found at start-up: nothing else under the folder can be asked for.
    wildcard: false,
    maxAge: '1h',
  });
  app.get('/', (_req, reply) => {
    reply.header('content-security-policy', PAGE_CSP);
    reply.header('x-content-type-options', 'nosniff');
    return reply.sendFile('index.html', { maxAge: 0 });
  });
}
