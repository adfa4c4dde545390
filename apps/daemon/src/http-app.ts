import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";

import { type Logger, jsonTextTooDeep, silentLogger } from "@kitt/protocol";

/**
 * The local API's request handling on node:http alone: a route table, a JSON
 * body reader with a size and a nesting limit, one-line JSON errors.
 *
 * It replaced Express 5, whose import alone cost the daemon 23 MiB of
 * resident memory (body-parser, iconv-lite, qs, mime-db...), a third of the
 * idle agent, for the dozen routes below.
 */

export interface ApiRequest {
  raw: IncomingMessage;
  method: string;
  /** The decoded path without the query string. */
  path: string;
  query: URLSearchParams;
  /** `:name` segments of the route that matched. */
  params: Record<string, string>;
  /** The parsed JSON body; undefined when the request has no JSON body (by Content-Type). */
  body: unknown;
  /** True when the Content-Type is application/json or application/*+json. */
  isJson: boolean;
  /** A request header, lower-case name; the first value when repeated. */
  header(name: string): string | undefined;
}

export type Handler = (req: ApiRequest, res: ServerResponse) => void | Promise<void>;

/** Handlers that run before routing (auth); true means the request is answered. */
export type Guard = (req: ApiRequest, res: ServerResponse) => boolean;

/** A client error with its status and one-line message. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(text));
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, error: string): void {
  sendJson(res, status, { error });
}

export function sendText(res: ServerResponse, status: number, contentType: string, text: string): void {
  res.statusCode = status;
  res.setHeader("Content-Type", contentType);
  res.setHeader("Content-Length", Buffer.byteLength(text));
  res.end(text);
}

interface Pattern {
  method: string;
  segments: string[];
}

interface Route extends Pattern {
  handler: Handler;
}

interface PreRoute extends Pattern {
  handler: (req: ApiRequest, res: ServerResponse) => boolean;
}

export interface HttpAppOptions {
  /** Largest JSON body read (default 1 MiB); a larger one is a 413. */
  bodyLimitBytes?: number;
  /** Deepest nesting of a JSON body; deeper is a 400 before it is parsed. */
  maxBodyDepth: number;
  logger?: Logger;
}

function mediaType(header: string | undefined): { type: string; charset: string | undefined } | undefined {
  if (header === undefined || header === "") return undefined;
  const [type = "", ...params] = header.split(";");
  const charset = params
    .map((p) => p.trim().toLowerCase())
    .find((p) => p.startsWith("charset="))
    ?.slice("charset=".length)
    .replace(/^"|"$/g, "");
  return { type: type.trim().toLowerCase(), charset };
}

function isJsonType(type: string): boolean {
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

/** Reads the whole body up to `limit` bytes; a longer one is a 413 (the rest is not read). */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw new HttpError(413, "request body too large");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, "request body too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/**
 * Strict JSON (an object or an array at the top, as Express's `strict: true`);
 * the empty body is `{}`. JSON.parse takes any depth, but what walks the value
 * afterwards (schema checks, JSON.stringify into the job journal) recurses: a
 * body nested 100,000 levels deep overflowed the stack. So the text is checked
 * for depth before it is parsed, for every route (a 400).
 */
function parseJson(text: string, maxDepth: number): unknown {
  const problem = jsonTextTooDeep(text, maxDepth);
  if (problem !== undefined) throw new HttpError(400, `body ${problem}`);
  const first = /\S/.exec(text)?.[0];
  if (first === undefined) return {};
  if (first !== "{" && first !== "[") throw new HttpError(400, "body is not valid JSON");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, "body is not valid JSON");
  }
}

function firstHeader(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * A route table for node:http: `get`/`post` with `/a/:param` patterns, guards
 * before routing, the JSON body of any request read and checked before the
 * route runs (so no route sees an oversized or too-deep body), HEAD answered
 * by the GET route, unknown routes a 404, and any error a one-line JSON
 * answer (a handler's unexpected error is logged and answered 500).
 */
export class HttpApp {
  private readonly routes: Route[] = [];
  private readonly pre: PreRoute[] = [];
  private readonly guards: Guard[] = [];
  private readonly limit: number;
  private readonly logger: Logger;

  constructor(private readonly options: HttpAppOptions) {
    this.limit = options.bodyLimitBytes ?? 1024 * 1024;
    this.logger = options.logger ?? silentLogger;
  }

  get(path: string, handler: Handler): void {
    this.routes.push({ method: "GET", segments: path.split("/"), handler });
  }

  post(path: string, handler: Handler): void {
    this.routes.push({ method: "POST", segments: path.split("/"), handler });
  }

  /** Runs before the body is read and the route is found; answering the request ends it there. */
  guard(guard: Guard): void {
    this.guards.push(guard);
  }

  /**
   * A GET route looked at before the guards (the unauthenticated status
   * probe): it answers (true) or lets the request go on to the guards.
   */
  preGet(path: string, handler: (req: ApiRequest, res: ServerResponse) => boolean): void {
    this.pre.push({ method: "GET", segments: path.split("/"), handler });
  }

  listener(): RequestListener {
    return (raw, res) => {
      this.handle(raw, res).catch((err: unknown) => this.fail(res, err));
    };
  }

  private match<R extends Pattern>(method: string, path: string, routes: R[]): { route: R; params: Record<string, string> } | undefined {
    const parts = path.split("/");
    const want = method === "HEAD" ? "GET" : method;
    for (const route of routes) {
      if (route.method !== want || route.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length && ok; i++) {
        const seg = route.segments[i] as string;
        const part = parts[i] as string;
        if (seg.startsWith(":")) {
          if (part === "") ok = false;
          else params[seg.slice(1)] = part;
        } else ok = seg === part;
      }
      if (ok) return { route, params };
    }
    return undefined;
  }

  private async handle(raw: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    let path: string;
    try {
      url = new URL(raw.url ?? "/", "http://agent.invalid");
      path = decodeURIComponent(url.pathname);
    } catch {
      sendError(res, 400, "malformed request path");
      return;
    }
    const content = mediaType(firstHeader(raw, "content-type"));
    const req: ApiRequest = {
      raw,
      method: raw.method ?? "GET",
      path,
      query: url.searchParams,
      params: {},
      body: undefined,
      isJson: content !== undefined && isJsonType(content.type),
      header: (name) => firstHeader(raw, name.toLowerCase()),
    };

    const pre = this.match(req.method, path, this.pre);
    if (pre?.route.handler(req, res) === true) return;
    for (const guard of this.guards) if (guard(req, res)) return;

    if (req.isJson && content !== undefined) {
      const encoding = (firstHeader(raw, "content-encoding") ?? "identity").toLowerCase();
      if (encoding !== "identity") throw new HttpError(415, `unsupported content encoding "${encoding}"`);
      if (content.charset !== undefined && content.charset !== "utf-8" && content.charset !== "utf8") {
        throw new HttpError(415, `unsupported charset "${content.charset.toUpperCase()}"`);
      }
      req.body = parseJson((await readBody(raw, this.limit)).toString("utf8"), this.options.maxBodyDepth);
    }

    const found = this.match(req.method, path, this.routes);
    if (found === undefined) {
      sendError(res, 404, "not found");
      return;
    }
    req.params = found.params;
    await found.route.handler(req, res);
  }

  private fail(res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HttpError) {
      // A body left unread (413) would be taken for the next request: close the connection after the answer.
      if (err.status === 413) res.setHeader("Connection", "close");
      sendError(res, err.status, err.message);
      return;
    }
    this.logger.error(`local API error: ${err instanceof Error ? err.message : String(err)}`);
    sendError(res, 500, "internal error");
  }
}
