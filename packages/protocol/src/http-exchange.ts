import type { Agent as HttpAgent, IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { Agent as HttpsAgent } from "node:https";

import { KittError } from "./errors.js";
import { http, loadHttps } from "./node-http.js";

/**
 * One HTTP(S) exchange on node's own client, for the KITT server client: a
 * request, then `consume` reads the answer, with a connect timeout (new
 * sockets only), a deadline for the whole exchange (or, with `idle`, for each
 * gap between data once the answer has begun: a long download is not cut for
 * being long), and an AbortSignal. It replaced `got`, whose import cost the
 * daemon ~36 MiB of resident memory for what these few lines do.
 */

/** A failure below HTTP (refused, reset, DNS, TLS, timeout), with node's error code. */
export class TransportError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "TransportError";
  }
}

export interface ExchangeRequest {
  url: URL;
  method: "GET" | "POST";
  headers: OutgoingHttpHeaders;
  /** Sent as is (the caller sets content-type). */
  body?: string;
  /** The agent for each scheme; the https one is asked for only for an https URL. */
  agents: { http: HttpAgent; https: () => HttpsAgent };
  connectTimeoutMs: number;
  /** The whole exchange, answer read included. */
  timeoutMs: number;
  /** After the answer's headers, `timeoutMs` bounds each silence instead of the whole. */
  idle?: boolean;
  signal?: AbortSignal | undefined;
}

function abortError(): Error {
  return Object.assign(new Error("aborted"), { name: "AbortError" });
}

export async function exchange<T>(r: ExchangeRequest, consume: (res: IncomingMessage) => Promise<T>): Promise<T> {
  if (r.signal?.aborted === true) throw abortError();
  const stop = new AbortController();
  const fail = (reason: Error) => {
    if (!stop.signal.aborted) stop.abort(reason);
  };
  const timeout = (what: string, ms: number) => () => fail(new TransportError("ETIMEDOUT", `Timeout awaiting '${what}' for ${ms}ms`));
  let deadline = setTimeout(timeout("request", r.timeoutMs), r.timeoutMs);
  let connectTimer: NodeJS.Timeout | undefined;
  const onOuterAbort = () => fail(abortError());
  r.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const secure = r.url.protocol === "https:";
  const options = {
    method: r.method,
    headers: r.body !== undefined ? { ...r.headers, "content-length": Buffer.byteLength(r.body) } : r.headers,
  };
  const req = secure ? loadHttps().request(r.url, { ...options, agent: r.agents.https() }) : http.request(r.url, { ...options, agent: r.agents.http });
  // Whatever stops the exchange (timeout, abort, a consumer that gives up) destroys the request and its socket.
  stop.signal.addEventListener("abort", () => req.destroy(stop.signal.reason as Error), { once: true });
  req.on("socket", (socket) => {
    if (!socket.connecting) return;
    connectTimer = setTimeout(timeout("connect", r.connectTimeoutMs), r.connectTimeoutMs);
    socket.once(secure ? "secureConnect" : "connect", () => clearTimeout(connectTimer));
  });
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.once("error", reject);
      req.end(r.body);
    });
    if (r.idle === true) {
      clearTimeout(deadline);
      const rearm = () => {
        clearTimeout(deadline);
        deadline = setTimeout(timeout("response data", r.timeoutMs), r.timeoutMs);
      };
      rearm();
      res.on("data", rearm);
    }
    return await consume(res);
  } catch (err) {
    // The reason we stopped it is the error, not the "socket hang up" that follows.
    const reason: unknown = stop.signal.aborted ? stop.signal.reason : err;
    if (!stop.signal.aborted) stop.abort(reason);
    if (reason instanceof TransportError || (reason instanceof Error && reason.name === "AbortError")) throw reason;
    const code = (reason as NodeJS.ErrnoException | undefined)?.code;
    if (typeof code === "string" && reason instanceof Error && !(reason instanceof KittError)) throw new TransportError(code, reason.message, { cause: reason });
    throw reason;
  } finally {
    clearTimeout(deadline);
    clearTimeout(connectTimer);
    r.signal?.removeEventListener("abort", onOuterAbort);
  }
}

/** Reads the whole answer as UTF-8, never holding more than `cap` bytes; `tooLarge` makes the error. */
export async function readCapped(res: IncomingMessage, cap: number, tooLarge: () => Error): Promise<string> {
  const announced = Number(res.headers["content-length"]);
  if (Number.isFinite(announced) && announced > cap) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > cap) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString("utf8");
}
