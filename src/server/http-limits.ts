// Bounds on what a connection may hold: how long a client may take to send its headers and its
// whole request (a body trickled a byte at a time is cut off), how long an idle keep-alive
// connection stays open, how many connections are open at once, and which proxies name the client.
import type { Server } from 'node:http';
import type { FastifyHttpOptions } from 'fastify';
import type { ServerSettings } from './settings.ts';

type Limits = Pick<ServerSettings, 'headerTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs' | 'trustProxy'>;

/** Fastify's options for the limits; Node answers a request over its time with 408 and closes the connection. */
export function httpLimitOptions(s: Limits): FastifyHttpOptions<Server> {
  return {
    requestTimeout: s.requestTimeoutMs,
    keepAliveTimeout: s.keepAliveTimeoutMs,
    // Node checks the header and request timeouts on this period (30 s by default, far coarser than the limits).
    http: {
      headersTimeout: s.headerTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(s.headerTimeoutMs / 4))),
    },
    // Draining is answered by the server itself (503, Retry-After, Connection: close); fastify's own 503 has no Retry-After.
    return503OnClosing: false,
    // Closing ends every connection, idle or not, once the drain has answered what it could.
    forceCloseConnections: true,
    // req.ip, which rate limits and client shares key by, is the socket's address unless a proxy is trusted.
    trustProxy: trustProxyOption(s.trustProxy),
  };
}

/** --trust-proxy as fastify's trustProxy: off, any proxy, a hop count, or addresses/CIDRs. */
export function trustProxyOption(value: string): FastifyHttpOptions<Server>['trustProxy'] {
  const v = value.trim();
  if (v === '' || v === 'false') return false;
  if (v === 'true') return true;
  // A hop count (its type in fastify's options lacks number, which proxy-addr takes).
  if (/^\d+$/.test(v)) return Number(v) as unknown as boolean;
  return v
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
}

/** Connections past `max` are closed as they arrive (Node counts them and drops the excess). */
export function capConnections(server: Server, max: number): void {
  server.maxConnections = max;
}
