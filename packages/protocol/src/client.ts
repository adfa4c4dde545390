import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import type { Agent as HttpAgent, IncomingMessage } from "node:http";
import type { Agent as HttpsAgent } from "node:https";
import { basename, join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";

import { backoffDelay, type BackoffPolicy, parseRetryAfter, sleep as defaultSleep } from "./backoff.js";
import { ConnectionError, IntegrityError, ServerError, describeConnectionCode } from "./client-errors.js";
import { KittError, ProtocolError } from "./errors.js";
import { exchange, readCapped, TransportError } from "./http-exchange.js";
import { http, loadHttps } from "./node-http.js";
import { type Logger, silentLogger } from "./logger.js";
import type {
  BuildContextDigest,
  HealthResponse,
  HeartbeatRequest,
  HeartbeatResponse,
  PackageDigest,
  RegisterRequest,
  RegisterResponse,
  ResultReport,
  StatusUpdate,
  TestList,
  TestLogs,
  TestRow,
  VersionResponse,
} from "./messages.js";
import { parseHeartbeatResponse, parseRegisterResponse } from "./parse.js";
import type { SchemaName } from "./schemas.js";
import { check, validate } from "./validate.js";

/** PEM contents (not paths): see `readTlsFiles` for agent.yaml's paths. */
export interface ClientTls {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface KittServerClientOptions {
  serverUrl: string;
  token?: string;
  tls?: ClientTls;
  /** Skip verification of the server's certificate (development only). */
  insecure?: boolean;
  /** Whole-request timeout per attempt (default 15 s). */
  timeoutMs?: number;
  /** Connect timeout per attempt (default 5 s). */
  connectTimeoutMs?: number;
  /** Retries after the first attempt for retryable failures (default 3). */
  retries?: number;
  /**
   * Largest JSON response body read (default 16 MiB): a longer one is
   * abandoned as soon as it passes the cap and the call fails with a
   * TOO_LARGE KittError naming the route (not retried).
   */
  maxResponseBytes?: number;
  backoff?: BackoffPolicy;
  logger?: Logger;
  /** Seams for tests. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
  userAgent?: string;
}

export interface CallOptions {
  timeoutMs?: number;
  /** This call's response body cap (default: the client's maxResponseBytes). */
  maxResponseBytes?: number;
  retries?: number;
  signal?: AbortSignal;
}

export interface ListTestsQuery {
  agentName?: string;
  status?: string;
  perPage?: number;
  page?: number;
}

export interface DownloadedPackage {
  path: string;
  filename: string;
  sha256: string;
  bytes: number;
}

export interface DownloadedBuildContext {
  /** The verified `.tar.gz` in the destination directory. */
  path: string;
  sha256: string;
  bytes: number;
}

export interface BuildContextDownloadOptions extends CallOptions {
  /** A larger download is abandoned (default 4 GiB). */
  maxBytes?: number;
}

/** Where a verified build context is put inside `destDir`. */
export const BUILD_CONTEXT_FILENAME = "kitt-build-context.tar.gz";
/** Downloads to a file (agent package, build context) stop at this size. */
const DEFAULT_MAX_DOWNLOAD_BYTES = 4 * 1024 ** 3;
/** JSON answers are read into memory: a heartbeat with thousands of commands is well below this. */
export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

type Method = "GET" | "POST";

/**
 * Typed client of the KITT server's agent-facing API. Every call validates
 * what it sends and what it gets back, retries only what is safe to retry
 * (connection errors, 429, 5xx) with capped exponential backoff and jitter,
 * and throws ServerError / ConnectionError / ProtocolError. The token never
 * appears in an error or a log line.
 */
export class KittServerClient {
  readonly serverUrl: string;
  private readonly origin: string;
  private readonly token: string;
  private readonly headers: Record<string, string>;
  private readonly agents: { http: HttpAgent; https: () => HttpsAgent };
  private httpsAgent: HttpsAgent | undefined;
  private readonly retries: number;
  private readonly backoff: BackoffPolicy;
  private readonly logger: Logger;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly random: () => number;
  private readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(options: KittServerClientOptions) {
    let url: URL;
    try {
      url = new URL(options.serverUrl);
    } catch {
      throw new KittError(`invalid server URL ${JSON.stringify(options.serverUrl)}`, { code: "USAGE" });
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new KittError(`server URL must be http(s), got ${JSON.stringify(options.serverUrl)}`, { code: "USAGE" });
    }
    this.serverUrl = options.serverUrl.replace(/\/+$/, "");
    this.origin = url.origin;
    this.token = options.token ?? "";
    this.retries = options.retries ?? 3;
    this.backoff = options.backoff ?? { baseMs: 500, maxMs: 30_000 };
    this.logger = options.logger ?? silentLogger;
    this.sleep = options.sleep ?? defaultSleep;
    this.random = options.random ?? Math.random;
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.maxResponseBytes = checkCap(options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES);
    const tls = options.tls ?? {};
    // The https agent (and node:https with it) is made on the first https request.
    this.agents = {
      http: new http.Agent({ keepAlive: true, maxSockets: 8 }),
      https: () =>
        (this.httpsAgent ??= new (loadHttps().Agent)({
          keepAlive: true,
          maxSockets: 8,
          ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
          ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
          ...(tls.key !== undefined ? { key: tls.key } : {}),
          rejectUnauthorized: options.insecure !== true,
        })),
    };
    const headers: Record<string, string> = { "user-agent": options.userAgent ?? "kitt-agent" };
    if (this.token !== "") headers.authorization = `Bearer ${this.token}`;
    this.headers = headers;
  }

  /** One exchange with the server (no redirect followed: a 3xx is an answer like any other). */
  private exchange<T>(method: Method, path: string, opts: CallOptions, body: unknown, consume: (res: IncomingMessage) => Promise<T>, idle = false): Promise<T> {
    const json = body === undefined ? undefined : JSON.stringify(body);
    return exchange(
      {
        url: new URL(`${this.serverUrl}/${path}`),
        method,
        headers: json === undefined ? this.headers : { ...this.headers, "content-type": "application/json" },
        ...(json !== undefined ? { body: json } : {}),
        agents: this.agents,
        connectTimeoutMs: this.connectTimeoutMs,
        timeoutMs: opts.timeoutMs ?? this.timeoutMs,
        idle,
        signal: opts.signal,
      },
      consume,
    );
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.agents.http.destroy();
    this.httpsAgent?.destroy();
  }

  /* ---- agent -> server ---- */

  async health(opts: CallOptions = {}): Promise<HealthResponse> {
    return validate<HealthResponse>("health", await this.json("GET", "api/v1/health", undefined, opts));
  }

  async version(opts: CallOptions = {}): Promise<VersionResponse> {
    return validate<VersionResponse>("version", await this.json("GET", "api/v1/version", undefined, opts));
  }

  async register(body: RegisterRequest, opts: CallOptions = {}): Promise<RegisterResponse> {
    this.checkOutgoing("registerRequest", body);
    if (body.hardware_details !== undefined) {
      try {
        JSON.parse(body.hardware_details);
      } catch {
        throw new ProtocolError("register request", "hardware_details", "must be a JSON string");
      }
    }
    return parseRegisterResponse(await this.json("POST", "api/v1/agents/register", body, opts));
  }

  async heartbeat(agentId: string, body: HeartbeatRequest, opts: CallOptions = {}): Promise<HeartbeatResponse> {
    this.checkOutgoing("heartbeatRequest", body);
    return parseHeartbeatResponse(await this.json("POST", `api/v1/agents/${enc(agentId)}/heartbeat`, body, opts));
  }

  /** One log row; `line` may hold several lines joined by newlines. */
  async postLog(testId: string, line: string, opts: CallOptions = {}): Promise<void> {
    const body = { line };
    this.checkOutgoing("logLine", body);
    await this.json("POST", `api/v1/quicktest/${enc(testId)}/logs`, body, opts);
  }

  async postStatus(testId: string, update: StatusUpdate, opts: CallOptions = {}): Promise<void> {
    this.checkOutgoing("statusUpdate", update);
    await this.json("POST", `api/v1/quicktest/${enc(testId)}/status`, update, opts);
  }

  async reportResult(agentId: string, report: ResultReport, opts: CallOptions = {}): Promise<void> {
    this.checkOutgoing("resultReport", report);
    await this.json("POST", `api/v1/agents/${enc(agentId)}/results`, report, opts);
  }

  async getTest(testId: string, opts: CallOptions = {}): Promise<TestRow> {
    return validate<TestRow>("testRow", await this.json("GET", `api/v1/quicktest/${enc(testId)}`, undefined, opts));
  }

  async getTestLogs(testId: string, opts: CallOptions = {}): Promise<TestLogs> {
    return validate<TestLogs>("testLogs", await this.json("GET", `api/v1/quicktest/${enc(testId)}/logs`, undefined, opts));
  }

  async listTests(query: ListTestsQuery = {}, opts: CallOptions = {}): Promise<TestList> {
    const params = new URLSearchParams();
    if (query.agentName !== undefined) params.set("agent_name", query.agentName);
    if (query.status !== undefined) params.set("status", query.status);
    if (query.perPage !== undefined) {
      if (!Number.isInteger(query.perPage) || query.perPage < 1 || query.perPage > 100) {
        throw new KittError(`per_page must be an integer 1-100, got ${query.perPage}`, { code: "USAGE" });
      }
      params.set("per_page", String(query.perPage));
    }
    if (query.page !== undefined) params.set("page", String(query.page));
    const qs = params.size > 0 ? `?${params.toString()}` : "";
    return validate<TestList>("testList", await this.json("GET", `api/v1/quicktest/${qs}`, undefined, opts));
  }

  async getPackageDigest(opts: CallOptions = {}): Promise<PackageDigest> {
    return validate<PackageDigest>("packageDigest", await this.json("GET", "api/v1/agent/package/sha256", undefined, opts));
  }

  /**
   * Downloads the agent package into `destDir`, checking it against the
   * server's sha256 before it is renamed into place. A mismatch leaves
   * nothing behind and throws IntegrityError.
   */
  async downloadPackage(destDir: string, opts: CallOptions = {}): Promise<DownloadedPackage> {
    const digest = await this.getPackageDigest(opts);
    const filename = basename(digest.filename);
    if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$/.test(filename)) {
      throw new ProtocolError("package digest", "filename", `is not a safe file name, got ${JSON.stringify(digest.filename)}`);
    }
    await mkdir(destDir, { recursive: true });
    const tmp = join(destDir, `.${randomBytes(6).toString("hex")}.download`);
    try {
      const { sha256, bytes } = await this.streamToFile("api/v1/agent/package", tmp, opts, DEFAULT_MAX_DOWNLOAD_BYTES);
      if (sha256 !== digest.sha256.toLowerCase()) {
        throw new IntegrityError(`agent package ${filename}: sha256 ${sha256} does not match the server's ${digest.sha256.toLowerCase()}`);
      }
      const dest = join(destDir, filename);
      await rename(tmp, dest);
      return { path: dest, filename, sha256, bytes };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * The digest the build context must match. The digest is mandatory: a 404
   * or an answer that is not `{"sha256":"<64 hex>"}` throws IntegrityError.
   */
  async buildContextDigest(opts: CallOptions = {}): Promise<BuildContextDigest> {
    const path = "api/v1/agent/build-context/sha256";
    let body: unknown;
    try {
      body = await this.json("GET", path, undefined, opts);
    } catch (err) {
      if (err instanceof ServerError && err.status === 404) {
        throw new IntegrityError(`build context digest missing: GET /${path} answered 404; refusing an unverified build context`, { cause: err });
      }
      if (err instanceof ProtocolError) throw new IntegrityError(`build context digest invalid: ${err.message}`, { cause: err });
      throw err;
    }
    const problem = check("buildContextDigest", body);
    if (problem !== undefined) throw new IntegrityError(`build context digest invalid: ${problem.message}`, { cause: problem });
    return { sha256: (body as BuildContextDigest).sha256.toLowerCase() };
  }

  /**
   * Downloads the KITT build context (`.tar.gz`) into `destDir` as
   * BUILD_CONTEXT_FILENAME, checked against buildContextDigest() first: a
   * missing or invalid digest, or a download that does not match it, throws
   * IntegrityError and leaves no file behind.
   */
  async downloadBuildContext(destDir: string, opts: BuildContextDownloadOptions = {}): Promise<DownloadedBuildContext> {
    const digest = await this.buildContextDigest(opts);
    await mkdir(destDir, { recursive: true });
    const tmp = join(destDir, `.${randomBytes(6).toString("hex")}.download`);
    try {
      const maxBytes = opts.maxBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES;
      const { sha256, bytes } = await this.streamToFile("api/v1/agent/build-context", tmp, opts, maxBytes);
      if (sha256 !== digest.sha256) {
        throw new IntegrityError(`build context digest mismatch: the download's sha256 ${sha256} is not the server's ${digest.sha256}`);
      }
      const dest = join(destDir, BUILD_CONTEXT_FILENAME);
      await rename(tmp, dest);
      return { path: dest, sha256, bytes };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Streams a GET into `file` (retried from the start), hashing as it goes. */
  private async streamToFile(path: string, file: string, opts: CallOptions, maxBytes: number): Promise<{ sha256: string; bytes: number }> {
    return this.withRetries("GET", path, opts, async () => {
      const hash = createHash("sha256");
      let size = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          size += chunk.length;
          if (size > maxBytes) {
            cb(new KittError(`GET /${path}: the download is larger than ${maxBytes} bytes`, { code: "TOO_LARGE" }));
            return;
          }
          hash.update(chunk);
          cb(null, chunk);
        },
      });
      // The timeout bounds each silence of the download, not its length.
      await this.exchange(
        "GET",
        path,
        opts,
        undefined,
        async (res) => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            res.resume();
            throw new ServerError({ status, method: "GET", path: `/${stripQuery(path)}` });
          }
          await pipeline(res, tap, createWriteStream(file, { mode: 0o644 }));
        },
        true,
      );
      return { sha256: hash.digest("hex"), bytes: size };
    });
  }

  /* ---- plumbing ---- */

  private checkOutgoing(schema: SchemaName, body: unknown): void {
    const problem = check(schema, body);
    if (problem !== undefined) throw problem;
  }

  /** One JSON call with retries; returns the parsed 2xx body. */
  private async json(method: Method, path: string, body: unknown, opts: CallOptions): Promise<unknown> {
    return this.withRetries(method, path, opts, async () => {
      const started = Date.now();
      const cap = opts.maxResponseBytes ?? this.maxResponseBytes;
      const tooLarge = () => new KittError(`${method} /${stripQuery(path)}: response body larger than ${formatBytes(cap)}; abandoned`, { code: "TOO_LARGE" });
      const res = await this.exchange(method, path, opts, body, async (answer) => ({
        statusCode: answer.statusCode ?? 0,
        headers: answer.headers,
        body: await readCapped(answer, cap, tooLarge),
      }));
      const status = res.statusCode;
      this.logger.debug(`${method} /${path} -> ${status} in ${Date.now() - started} ms`);
      if (status < 200 || status >= 300) {
        const err = new ServerError({ status, method, path: `/${stripQuery(path)}`, serverMessage: this.serverText(res.body) });
        (err as ServerError & { retryAfterMs?: number }).retryAfterMs = parseRetryAfter(headerOf(res.headers["retry-after"]));
        throw err;
      }
      if (res.body === "") return {};
      try {
        return JSON.parse(res.body) as unknown;
      } catch {
        throw new ProtocolError(`response of ${method} /${stripQuery(path)}`, "", "is not JSON");
      }
    });
  }

  private async withRetries<T>(method: Method, path: string, opts: CallOptions, attemptFn: () => Promise<T>): Promise<T> {
    const retries = opts.retries ?? this.retries;
    for (let attempt = 0; ; attempt++) {
      try {
        return await attemptFn();
      } catch (raw) {
        const err = this.normalise(raw, method, path);
        const retryable = (err instanceof ServerError || err instanceof ConnectionError) && err.retryable;
        if (!retryable || attempt >= retries || opts.signal?.aborted) throw err;
        const hinted = (err as { retryAfterMs?: number }).retryAfterMs;
        const delay = hinted !== undefined ? Math.min(hinted, this.backoff.maxMs) : backoffDelay(attempt, this.backoff, this.random);
        this.logger.warn(`${err.message}; retry ${attempt + 1}/${retries} in ${(delay / 1000).toFixed(1)}s`);
        await this.sleep(delay, opts.signal);
      }
    }
  }

  /** Maps whatever the exchange threw to our typed errors, with the token removed. */
  private normalise(raw: unknown, method: Method, path: string): Error {
    if (raw instanceof KittError) return raw;
    const cleanPath = `/${stripQuery(path)}`;
    if (raw instanceof TransportError) {
      const { detail, retryable, tls } = describeConnectionCode(raw.code, this.redact(raw.message));
      return new ConnectionError({ method, path: cleanPath, origin: this.origin, code: raw.code, detail: this.redact(detail), retryable, tls });
    }
    if (raw instanceof Error && raw.name === "AbortError") {
      return new KittError(`${method} ${cleanPath} aborted`, { code: "ABORTED" });
    }
    const message = raw instanceof Error ? raw.message : String(raw);
    return new KittError(`${method} ${cleanPath} failed: ${this.redact(message)}`, { code: "REQUEST_FAILED" });
  }

  private serverText(body: string): string | undefined {
    try {
      const parsed = JSON.parse(body) as unknown;
      if (check("errorBody", parsed) === undefined) return this.redact((parsed as { error: string }).error);
    } catch {
      // not JSON: fall through
    }
    const text = body.trim().split("\n")[0]?.slice(0, 200);
    return text ? this.redact(text) : undefined;
  }

  private redact(text: string): string {
    return this.token.length >= 4 ? text.split(this.token).join("***") : text;
  }
}

function checkCap(bytes: number): number {
  if (!(Number.isSafeInteger(bytes) && bytes > 0)) throw new KittError(`maxResponseBytes must be a positive integer, got ${bytes}`, { code: "USAGE" });
  return bytes;
}

function formatBytes(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return Number.isInteger(mib) ? `${mib} MiB (${bytes} bytes)` : `${bytes} bytes`;
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

function stripQuery(path: string): string {
  const i = path.indexOf("?");
  return i === -1 ? path : path.slice(0, i);
}

function headerOf(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
