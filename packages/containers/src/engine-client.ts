/**
 * The Docker Engine API over node's own HTTP client: the engine's unix
 * socket, or tcp:// (TLS when DOCKER_TLS_VERIFY is set, with DOCKER_CERT_PATH's
 * ca.pem, cert.pem and key.pem as the docker CLI reads them).
 *
 * It replaced a general-purpose Docker library whose import alone cost 33
 * MiB of resident memory (gRPC, protobufjs and ssh2, for features the agent
 * never uses; see the README).
 * The API version is negotiated once, as the docker CLI does: the engine's
 * own (GET /version), capped at the newest this client was written for, so
 * that an engine that has dropped old versions still answers and a newer
 * one keeps the semantics the runtime expects.
 */
import { readFileSync } from "node:fs";
import type { Agent as HttpAgent, ClientRequest, IncomingMessage, OutgoingHttpHeaders, RequestOptions as NodeRequestOptions } from "node:http";
import type { Agent as HttpsAgent } from "node:https";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";

import { http, loadHttps, UsageError } from "@kitt/protocol";

import type { DockerEndpoint } from "./docker-host.js";

/** The newest Engine API version the runtime's requests are written for (Docker 27). */
export const MAX_API_VERSION = "1.47";

/** The engine answered a call with an error status; `engineMessage` is its `message`, whole. */
export class EngineAnswerError extends Error {
  constructor(
    readonly statusCode: number,
    readonly engineMessage: string,
  ) {
    super(`HTTP ${statusCode}: ${engineMessage.split("\n")[0]?.trim() ?? ""}`);
    this.name = "EngineAnswerError";
  }
}

/** Error bodies are read up to this much; the engine's are a line. */
const ERROR_BODY_CAP = 64 * 1024;
/** JSON answers (inspect, lists) are read up to this much. */
const JSON_BODY_CAP = 64 * 1024 * 1024;

export type Query = Record<string, string | number | boolean | undefined>;

export interface CallOptions {
  query?: Query;
  /** A JSON body. */
  json?: unknown;
  /** A streamed body (a build context). */
  body?: Readable;
  headers?: OutgoingHttpHeaders;
  signal?: AbortSignal | undefined;
}

export interface EngineClientOptions {
  /** Where DOCKER_CERT_PATH is read. */
  env?: NodeJS.ProcessEnv;
  /** A kept-alive socket idle this long is closed (default 10 s): the engine itself never closes one. */
  idleSocketMs?: number;
}

function queryString(query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined) params.set(k, typeof v === "boolean" ? (v ? "1" : "0") : String(v));
  }
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

async function readAll(res: Readable, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > cap) {
      res.destroy();
      throw new Error(`the engine's answer is larger than ${cap} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString("utf8");
}

/** The error an answer with status >= 300 stands for: the engine's `message`, else its text, else the status line. */
async function answerError(res: IncomingMessage): Promise<EngineAnswerError> {
  const status = res.statusCode ?? 0;
  const text = await readAll(res, ERROR_BODY_CAP).catch(() => "");
  let message: string | undefined;
  try {
    const parsed = JSON.parse(text) as { message?: unknown } | null;
    if (typeof parsed?.message === "string") message = parsed.message;
  } catch {
    // Not JSON: the text itself.
  }
  return new EngineAnswerError(status, (message ?? text).trim() || res.statusMessage || "no reason given");
}

/** `1.41` < `1.47`, numerically per part. */
function olderApi(a: string, b: string): boolean {
  const [aMajor = 0, aMinor = 0] = a.split(".").map(Number);
  const [bMajor = 0, bMinor = 0] = b.split(".").map(Number);
  return aMajor !== bMajor ? aMajor < bMajor : aMinor < bMinor;
}

/** An image reference as a path: its `/` and `:` kept, anything odd escaped. */
export function imagePath(ref: string): string {
  return `/images/${ref.split("/").map(encodeURIComponent).join("/").replace(/%3A/gi, ":").replace(/%40/g, "@")}`;
}

export function containerPath(id: string): string {
  return `/containers/${encodeURIComponent(id)}`;
}

function tlsFiles(env: NodeJS.ProcessEnv): { ca: Buffer; cert: Buffer; key: Buffer } {
  const dir = env.DOCKER_CERT_PATH !== undefined && env.DOCKER_CERT_PATH !== "" ? env.DOCKER_CERT_PATH : join(homedir(), ".docker");
  const read = (name: string): Buffer => {
    try {
      return readFileSync(join(dir, name));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new UsageError(`DOCKER_TLS_VERIFY is set but ${join(dir, name)} cannot be read (${code}); set DOCKER_CERT_PATH to the folder with ca.pem, cert.pem and key.pem`);
    }
  };
  return { ca: read("ca.pem"), cert: read("cert.pem"), key: read("key.pem") };
}

export class EngineClient {
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly target: NodeRequestOptions;
  private readonly secure: boolean;
  /** `/v1.41`, or "" (the engine's current version) when it did not say; undefined until asked. */
  private prefix: string | undefined;

  constructor(endpoint: DockerEndpoint, options: EngineClientOptions = {}) {
    this.secure = endpoint.kind === "tcp" && endpoint.tls;
    const tls = this.secure ? tlsFiles(options.env ?? process.env) : {};
    this.target = { ...(endpoint.kind === "unix" ? { socketPath: endpoint.socketPath } : { host: endpoint.host, port: endpoint.port }), ...tls };
    // Kept-alive sockets for every call but attach; `timeout` closes only idle ones (a slow answer is not cut).
    const agentOptions = { keepAlive: true, timeout: options.idleSocketMs ?? 10_000, ...tls };
    this.agent = this.secure ? new (loadHttps().Agent)(agentOptions) : new http.Agent(agentOptions);
  }

  private send(method: string, path: string, options: CallOptions, extra: { headers?: OutgoingHttpHeaders; agent?: false } = {}): ClientRequest {
    const json = options.json === undefined ? undefined : JSON.stringify(options.json);
    const headers: OutgoingHttpHeaders = { ...options.headers, ...extra.headers };
    if (json !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = Buffer.byteLength(json);
    }
    const req = (this.secure ? loadHttps() : http).request({
      ...this.target,
      method,
      path: `${path}${queryString(options.query)}`,
      headers,
      agent: extra.agent ?? this.agent,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    if (options.body !== undefined) {
      options.body.once("error", (err) => req.destroy(err));
      options.body.pipe(req);
    } else req.end(json);
    return req;
  }

  /** The versioned path; the first call asks the engine which version to speak. */
  private async versioned(path: string, signal: AbortSignal | undefined): Promise<string> {
    if (this.prefix === undefined) {
      const res = await new Promise<IncomingMessage>((resolve, reject) => this.send("GET", "/version", { signal }).once("response", resolve).once("error", reject));
      let version: unknown;
      try {
        if (res.statusCode === 200) version = (JSON.parse(await readAll(res, ERROR_BODY_CAP)) as { ApiVersion?: unknown } | null)?.ApiVersion;
        else res.resume();
      } catch {
        // Not JSON: as if it did not say.
      }
      // An engine that does not say is spoken to in its own current version (no prefix).
      this.prefix = typeof version === "string" && /^\d+\.\d+$/.test(version) ? `/v${olderApi(version, MAX_API_VERSION) ? version : MAX_API_VERSION}` : "";
    }
    return `${this.prefix}${path}`;
  }

  /** The API version in use (`1.41`), or "" for the engine's own; undefined before the first call. */
  get apiVersion(): string | undefined {
    return this.prefix?.replace(/^\/v/, "");
  }

  /** Sends one request; resolves with the answer once its headers are in. A status >= 300 is an EngineAnswerError. */
  async request(method: string, path: string, options: CallOptions = {}): Promise<IncomingMessage> {
    const full = await this.versioned(path, options.signal);
    const res = await new Promise<IncomingMessage>((resolve, reject) => this.send(method, full, options).once("response", resolve).once("error", reject));
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return res;
    throw await answerError(res);
  }

  /** A call whose answer is JSON (or nothing: 204). */
  async json<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const text = await readAll(await this.request(method, path, options), JSON_BODY_CAP);
    return (text.trim() === "" ? undefined : JSON.parse(text)) as T;
  }

  /** A call whose answer is a stream (logs, pull and build progress, wait). */
  stream(method: string, path: string, options: CallOptions = {}): Promise<Readable> {
    return this.request(method, path, options);
  }

  /**
   * POST with the connection taken over (attach): asks to upgrade, as the
   * docker CLI does, and reads the raw stream from the socket after a 101;
   * an engine that answers 200 instead streams the same bytes as the body.
   * Its own connection, never the kept-alive pool: it is not HTTP afterwards.
   */
  async hijack(path: string, options: CallOptions = {}): Promise<Readable> {
    const full = await this.versioned(path, options.signal);
    return new Promise<Readable>((resolve, reject) => {
      const req = this.send("POST", full, options, { headers: { connection: "Upgrade", upgrade: "tcp" }, agent: false });
      req.once("error", reject);
      req.once("upgrade", (_res: IncomingMessage, socket, head: Buffer) => {
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
      });
      req.once("response", (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve(res);
        else answerError(res).then(reject, reject);
      });
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
