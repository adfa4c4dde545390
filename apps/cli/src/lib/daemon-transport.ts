import type * as Crypto from "node:crypto";
import { readFileSync } from "node:fs";
import type { ClientRequestArgs, IncomingMessage } from "node:http";
import { Readable, type Duplex } from "node:stream";
import type * as Tls from "node:tls";
import type { PeerCertificate, TLSSocket } from "node:tls";
import { createRequire } from "node:module";

import type { AgentConfig } from "@kitt/protocol";
import { UsageError } from "@kitt/protocol/errors";
import { http } from "@kitt/protocol/node-http";

import { daemonHost, daemonUrl } from "./daemon-address.js";

export { daemonHost, daemonUrl } from "./daemon-address.js";

/** How the CLI reaches the local daemon: plain HTTP, or mTLS with the daemon's certificate pinned. */
export interface DaemonTransport {
  /** http(s)://<host>:<port> */
  baseUrl: string;
  /** A fetch for URLs under baseUrl (what the log streamer and the engine commands call). */
  fetch: typeof fetch;
  /** One request answered as a whole text (daemonRequest): no fetch globals, so no undici. */
  request(url: string, init: { method: string; headers: Record<string, string>; body: string | undefined; signal: AbortSignal | undefined }): Promise<{ status: number; text: string }>;
}

/** tls and crypto only when agent.yaml has a certificate: most `status` runs talk plain http. */
const load = createRequire(import.meta.url);

type DaemonTarget = Pick<AgentConfig, "port" | "host" | "tls">;

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

interface TlsMaterial {
  cert: string;
  key: string;
  ca?: string;
  /** SHA-256 fingerprint of tls.cert: the daemon serves with that certificate, so it must present exactly it. */
  pin: string;
  certPath: string;
}

function tlsMaterial(tls: AgentConfig["tls"]): TlsMaterial | undefined {
  if (tls.cert === undefined || tls.key === undefined) return undefined;
  const cert = readPem(tls.cert, "tls.cert");
  let pin: string;
  try {
    pin = new (load("node:crypto") as typeof Crypto).X509Certificate(cert).fingerprint256;
  } catch (err) {
    throw new UsageError(`tls.cert ${tls.cert}: not a PEM certificate`, { cause: err });
  }
  return {
    cert,
    key: readPem(tls.key, "tls.key"),
    ...(tls.ca === undefined ? {} : { ca: readPem(tls.ca, "tls.ca") }),
    pin,
    certPath: tls.cert,
  };
}

function pinError(material: TlsMaterial, cert: PeerCertificate | undefined): Error | undefined {
  if (cert?.fingerprint256 === material.pin) return undefined;
  return Object.assign(new Error(`the daemon presented a certificate other than tls.cert (${material.certPath}): refusing to talk to it`), {
    code: "DAEMON_CERT_MISMATCH",
  });
}

/**
 * A TLS connection that is handed to the HTTP request only once the pin
 * holds, so not a byte (not the token) reaches a daemon that presents another
 * certificate. With tls.ca the chain is verified as well; the names in the
 * certificate never matter, the pin replaces the host-name check.
 */
type CreateConnection = (options: ClientRequestArgs, oncreate: (err: Error | null, socket: Duplex) => void) => undefined;

function pinnedConnection(material: TlsMaterial, host: string, port: number): CreateConnection {
  return (_options, done) => {
    const socket: TLSSocket = (load("node:tls") as typeof Tls).connect({
      host,
      port,
      cert: material.cert,
      key: material.key,
      ...(material.ca === undefined ? { rejectUnauthorized: false } : { ca: material.ca, rejectUnauthorized: true }),
      checkServerIdentity: (_host, cert) => pinError(material, cert),
    });
    const onError = (err: Error): void => done(err, socket);
    socket.once("error", onError);
    socket.once("secureConnect", () => {
      socket.off("error", onError);
      // Without tls.ca, rejectUnauthorized is off and Node skips checkServerIdentity's verdict: enforce the pin here.
      const err = pinError(material, socket.getPeerCertificate());
      if (err !== undefined) {
        socket.destroy();
        done(err, socket);
        return;
      }
      done(null, socket);
    });
    return undefined;
  };
}

function toHeaders(incoming: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(incoming.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

/**
 * fetch's `headers` init as a plain record, without touching the global
 * `Headers` for the usual record or pairs: the first use of a fetch global
 * loads Node's bundled undici, ~50 ms of a `status` run.
 */
function headerRecord(init: RequestInit["headers"]): Record<string, string> {
  if (init === undefined) return {};
  const pairs: Iterable<[string, string]> = Array.isArray(init)
    ? (init as [string, string][])
    : typeof (init as Headers).entries === "function"
      ? (init as Headers).entries()
      : Object.entries(init as Record<string, string>);
  const out: Record<string, string> = {};
  for (const [name, value] of pairs) out[name.toLowerCase()] = value;
  return out;
}

interface Exchange {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  signal: AbortSignal | undefined;
}

/**
 * One request over node:http, dialled through `createConnection` when given.
 * Errors mirror fetch's (a TypeError whose cause carries the socket's code;
 * an aborted signal rejects with its reason), so callers handle both alike.
 * `onResponse` gets the response while the abort handler still guards it.
 */
function send<T>(createConnection: CreateConnection | undefined, x: Exchange, onResponse: (res: IncomingMessage) => T | PromiseLike<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const { signal } = x;
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const headers = { ...x.headers };
    if (x.body !== undefined) headers["content-length"] = String(Buffer.byteLength(x.body));
    const req = http.request({
      host: x.url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: x.url.port,
      path: `${x.url.pathname}${x.url.search}`,
      method: x.method,
      headers,
      ...(createConnection === undefined ? {} : { createConnection }),
    });
    let response: IncomingMessage | undefined;
    const onAbort = (): void => {
      const reason = signal?.reason as Error;
      response?.destroy(reason);
      req.destroy(reason);
      reject(reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    req.once("error", (err) => {
      signal?.removeEventListener("abort", onAbort);
      if (signal?.aborted) return;
      reject(new TypeError("fetch failed", { cause: err }));
    });
    req.once("response", (res) => {
      response = res;
      res.once("close", () => signal?.removeEventListener("abort", onAbort));
      resolve(onResponse(res));
    });
    req.end(x.body);
  });
}

/** A fetch over node:http that can dial through `createConnection`: global fetch cannot present a client certificate or pin the server's. */
function nodeFetch(createConnection: CreateConnection | undefined): typeof fetch {
  return (input, init = {}) =>
    send(
      createConnection,
      {
        url: new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url),
        method: init.method ?? "GET",
        headers: headerRecord(init.headers),
        body: typeof init.body === "string" ? init.body : undefined,
        signal: init.signal ?? undefined,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const noBody = status === 204 || status === 205 || status === 304;
        if (noBody) res.resume();
        return new Response(noBody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
          status,
          statusText: res.statusMessage ?? "",
          headers: toHeaders(res),
        });
      },
    );
}

/** A whole answer as text, without fetch's Response (see headerRecord). */
function nodeRequest(createConnection: CreateConnection | undefined): DaemonTransport["request"] {
  return (url, init) =>
    send(createConnection, { url: new URL(url), method: init.method, headers: init.headers, body: init.body, signal: init.signal }, (res) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.once("end", () => resolve({ status: res.statusCode ?? 0, text }));
        res.once("error", (err) => reject(init.signal?.aborted === true ? (init.signal.reason as Error) : new TypeError("fetch failed", { cause: err })));
      }),
    );
}

/**
 * The transport to the daemon agent.yaml describes: when tls.cert and tls.key
 * are set the daemon serves HTTPS with that pair and wants a client
 * certificate, so the CLI presents the same pair and pins the daemon to it.
 */
export function daemonTransport(config: DaemonTarget): DaemonTransport {
  const material = tlsMaterial(config.tls);
  const connection = material === undefined ? undefined : pinnedConnection(material, daemonHost(config), config.port);
  return { baseUrl: daemonUrl(config), fetch: nodeFetch(connection), request: nodeRequest(connection) };
}
