// Bounds on what a connection may hold: how long a client may take to send its headers and its
// whole request (a body trickled a byte at a time is cut off), how long an idle keep-alive
// connection stays open, and how many connections are open at once.
import type { Server } from 'node:http';
import type { ServerSettings } from './settings.ts';

type Limits = Pick<ServerSettings, 'headerTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs'>;

/** Fastify's options for the limits; Node answers a request over its time with 408 and closes the connection. */
export function httpLimitOptions(s: Limits) {
  return {
    requestTimeout: s.requestTimeoutMs,
    keepAliveTimeout: s.keepAliveTimeoutMs,
    // Node checks the header and request timeouts on this period (30 s by default, far coarser than the limits).
    http: { headersTimeout: s.headerTimeoutMs, connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(s.headerTimeoutMs / 4))) },
    // Draining is answered by the server itself (503, Retry-After, Connection: close); fastify's own 503 has no Retry-After.
    return503OnClosing: false,
    // Closing ends every connection, idle or not, once the drain has answered what it could.
    forceCloseConnections: true,
  } as const;
}

/** Connections past `max` are closed as they arrive (Node counts them and drops the excess). */
export function capConnections(server: Server, max: number): void {
  server.maxConnections = max;
}
