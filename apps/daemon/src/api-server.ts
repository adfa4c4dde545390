import { readFileSync } from "node:fs";
import type { IncomingMessage, RequestListener, Server } from "node:http";
import type { Socket } from "node:net";

import { http, loadHttps, type Logger, silentLogger } from "@kitt/protocol";

/** Connections the local API takes at most, whatever the open-file limit allows. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** SSE log streams at most (each holds a connection for the job's life). */
export const DEFAULT_MAX_STREAMS = 512;
/** A connection that sends no request (or nothing after its last answer) is closed after this. */
export const DEFAULT_IDLE_TIMEOUT_MS = 5_000;
/** A request must have arrived whole within this. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Connections kept free of SSE streams, so a full set of readers cannot lock out status or cancel. */
const RESERVED_FOR_REQUESTS = 16;

export interface ApiLimits {
  /** Default: 1024, never more than half the process's open-file limit. */
  maxConnections?: number;
  /** Default: 512, never more than maxConnections less 16. */
  maxStreams?: number;
  /** Idle keep-alive connections and connections that send no request are cut after this (default 5 s). */
  idleTimeoutMs?: number;
  /** Default 30 s. */
  requestTimeoutMs?: number;
}

export type ResolvedApiLimits = Required<ApiLimits>;

/** The soft RLIMIT_NOFILE of this process (Linux /proc), or undefined when unknown or unlimited. */
export function openFileLimit(limitsFile = "/proc/self/limits"): number | undefined {
  try {
    const line = readFileSync(limitsFile, "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = Number(line?.slice("Max open files".length).trim().split(/\s+/)[0]);
    return Number.isSafeInteger(soft) && soft > 0 ? soft : undefined;
  } catch {
    return undefined;
  }
}

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

/** The limits to apply: the defaults, bounded by the open-file limit so the API can never use up the agent's descriptors. */
export function resolveApiLimits(limits: ApiLimits = {}, fileLimit = openFileLimit()): ResolvedApiLimits {
  const byFiles = fileLimit === undefined ? Infinity : Math.max(RESERVED_FOR_REQUESTS * 2, Math.floor(fileLimit / 2));
  const maxConnections = Math.min(positiveInt("maxConnections", limits.maxConnections ?? DEFAULT_MAX_CONNECTIONS), byFiles);
  const maxStreams = Math.min(
    positiveInt("maxStreams", limits.maxStreams ?? DEFAULT_MAX_STREAMS),
    Math.max(1, maxConnections - RESERVED_FOR_REQUESTS),
  );
  const idleTimeoutMs = positiveInt("idleTimeoutMs", limits.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
  const requestTimeoutMs = Math.max(idleTimeoutMs, positiveInt("requestTimeoutMs", limits.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS));
  return { maxConnections, maxStreams, idleTimeoutMs, requestTimeoutMs };
}

export interface ApiServerOptions {
  app: RequestListener;
  /** Serve HTTPS (mTLS when `ca` is given). */
  tls?: { cert: Buffer | undefined; key: Buffer | undefined; ca?: Buffer | undefined };
  limits: ResolvedApiLimits;
  logger?: Logger;
  /** Refusals are logged at most this often (default 10 s). */
  dropLogIntervalMs?: number;
}

/**
 * The local API's HTTP(S) server with its resource caps: at most
 * `maxConnections` sockets (more are closed at once, leaving the others
 * alone), and a socket that sends no request, or nothing after its last
 * answer, is closed after about `idleTimeoutMs` (node adds up to a second
 * to the keep-alive wait). An SSE stream is an answer in progress, so none
 * of these cut it; the app caps streams separately.
 */
export function createApiServer(options: ApiServerOptions): Server {
  const { limits } = options;
  const logger = options.logger ?? silentLogger;
  // Headers and request deadlines are checked on this period: idle sockets go within ~1.2x the timeout.
  const connectionsCheckingInterval = Math.max(50, Math.min(1_000, Math.floor(limits.idleTimeoutMs / 4)));
  const timeouts = { headersTimeout: limits.idleTimeoutMs, requestTimeout: limits.requestTimeoutMs, keepAliveTimeout: limits.idleTimeoutMs };
  const { tls } = options;
  const server: Server =
    tls !== undefined
      ? loadHttps().createServer(
          {
            ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
            ...(tls.key !== undefined ? { key: tls.key } : {}),
            ...(tls.ca !== undefined ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
            handshakeTimeout: limits.idleTimeoutMs,
            connectionsCheckingInterval,
            ...timeouts,
          },
          options.app,
        )
      : http.createServer({ connectionsCheckingInterval, ...timeouts }, options.app);
  server.maxConnections = limits.maxConnections;
  server.keepAliveTimeout = limits.idleTimeoutMs;
  // headersTimeout only starts at the first byte: a socket that never sends one is cut by
  // inactivity instead (node destroys a socket whose timeout nobody handles). A request in
  // progress, an SSE stream above all, is not idle: requestTimeout bounds its arrival, and
  // node re-arms the keep-alive timeout once it is answered.
  server.on(tls !== undefined ? "secureConnection" : "connection", (socket: Socket) => socket.setTimeout(limits.idleTimeoutMs));
  server.on("request", (req: IncomingMessage) => req.socket.setTimeout(0));

  const dropLogIntervalMs = options.dropLogIntervalMs ?? 10_000;
  let dropped = 0;
  let lastLogAt = -Infinity;
  server.on("drop", () => {
    dropped++;
    const now = Date.now();
    if (now - lastLogAt < dropLogIntervalMs) return;
    lastLogAt = now;
    logger.warn(`local API at its cap of ${limits.maxConnections} connections: refused ${dropped} connection(s) so far`);
  });
  return server;
}
