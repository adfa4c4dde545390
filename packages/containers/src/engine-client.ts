/**
 * The few Docker Engine API calls the runtime makes, over node's own HTTP
 * client on the engine's unix socket (or tcp://, with TLS when
 * DOCKER_TLS_VERIFY is set: DOCKER_CERT_PATH's ca.pem, cert.pem, key.pem).
 *
 * It replaced dockerode, whose import cost the daemon ~33 MiB of resident
 * memory (it pulls in gRPC, protobufjs and ssh2 for features we never use).
 * Paths carry no API version, as dockerode's did: the engine answers with its
 * own current API.
 */
import { readFileSync } from "node:fs";
import type { Agent as HttpAgent, IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { Agent as HttpsAgent } from "node:https";
import { join } from "node:path";
import type { Readable } from "node:stream";

import { http, https } from "@kitt/protocol";

import type { DockerEndpoint } from "./docker-host.js";

/** What a failed call throws: node's error code for a transport failure, or the engine's status and message. */
export interface EngineCallError extends Error {
  code?: string;
  statusCode?: number;
  /** The engine's error body (`{"message": ...}`), when it sent one. */
  json?: { message?: string } | null;
}

/** Error bodies are read up to this much; the engine's are a line. */
const ERROR_BODY_CAP = 64 * 1024;
/** JSON answers (inspect, lists) are read up to this much. */
const JSON_BODY_CAP = 64 * 1024 * 1024;

type Query = Record<string, string | number | boolean | undefined>;

interface CallOptions {
  query?: Query;
  /** A JSON body. */
  json?: unknown;
  /** A streamed body (a build context). */
  body?: Readable;
  headers?: OutgoingHttpHeaders;
  signal?: AbortSignal | undefined;
}

function queryString(query: Query | undefined): string {
  if (query === undefined) return "";
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined) continue;
    params.set(k, typeof v === "boolean" ? (v ? "1" : "0") : String(v));
  }
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

async function readAll(res: IncomingMessage, cap: number): Promise<string> {
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

/** Path segments of image references keep their `/` and `:`; anything odd is escaped. */
function ref(value: string): string {
  return value.split("/").map(encodeURIComponent).join("/").replace(/%3A/gi, ":").replace(/%40/g, "@");
}

function tlsFiles(env: NodeJS.ProcessEnv): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const dir = env.DOCKER_CERT_PATH;
  if (dir === undefined || dir === "") return {};
  const read = (name: string) => {
    try {
      return readFileSync(join(dir, name));
    } catch {
      return undefined;
    }
  };
  const [ca, cert, key] = [read("ca.pem"), read("cert.pem"), read("key.pem")];
  return { ...(ca !== undefined ? { ca } : {}), ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) };
}

export class EngineClient {
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly secure: boolean;

  constructor(
    private readonly endpoint: DockerEndpoint,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.secure = endpoint.kind === "tcp" && endpoint.tls;
    // Kept-alive sockets for the short calls; streams (attach, wait, pull) hold their own while they last.
    this.agent = this.secure ? new https.Agent({ keepAlive: true, ...tlsFiles(env) }) : new http.Agent({ keepAlive: true });
  }

  /** Sends one request; resolves with the answer once its headers are in. A status >= 300 is an EngineCallError. */
  async request(method: string, path: string, options: CallOptions = {}): Promise<IncomingMessage> {
    const e = this.endpoint;
    const json = options.json === undefined ? undefined : JSON.stringify(options.json);
    const headers: OutgoingHttpHeaders = { ...options.headers };
    if (json !== undefined) {
      headers["content-type"] = "application/json";
      headers["content-length"] = Buffer.byteLength(json);
    }
    const target = {
      method,
      path: `${path}${queryString(options.query)}`,
      headers,
      agent: this.agent,
      ...(e.kind === "unix" ? { socketPath: e.socketPath } : { host: e.host, port: e.port }),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    };
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = (this.secure ? https : http).request(target, resolve);
      req.once("error", reject);
      if (options.body !== undefined) {
        options.body.once("error", (err) => req.destroy(err));
        options.body.pipe(req);
      } else req.end(json);
    });
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return res;
    let text = "";
    try {
      text = await readAll(res, ERROR_BODY_CAP);
    } catch {
      // The status is the error; a body we cannot read adds nothing.
    }
    let body: { message?: string } | null = null;
    try {
      const parsed = JSON.parse(text) as unknown;
      if (parsed !== null && typeof parsed === "object" && typeof (parsed as { message?: unknown }).message === "string") body = parsed as { message: string };
    } catch {
      // not JSON
    }
    const message = body?.message ?? (text.trim() || res.statusMessage || "");
    throw Object.assign(new Error(`(HTTP code ${status}) ${res.statusMessage ?? ""} - ${message}`), { statusCode: status, json: body }) as EngineCallError;
  }

  /** A call whose answer is JSON (or nothing: 204). */
  async json<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const res = await this.request(method, path, options);
    const text = await readAll(res, JSON_BODY_CAP);
    if (text.trim() === "") return undefined as T;
    return JSON.parse(text) as T;
  }

  /** A call whose answer is a stream (attach, logs, pull and build progress). */
  async stream(method: string, path: string, options: CallOptions = {}): Promise<Readable> {
    return this.request(method, path, options);
  }

  refPath(image: string): string {
    return ref(image);
  }

  close(): void {
    this.agent.destroy();
  }
}
