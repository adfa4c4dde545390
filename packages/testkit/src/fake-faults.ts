import type { NextFunction, Request, Response } from "express";
import type { FaultOptions, RecordedRequest, RequestMatch } from "./fake-server-types.js";

type Rule =
  | { kind: "fail"; remaining: number; match: RequestMatch; status: number; body: unknown; headers: Record<string, string> }
  | { kind: "drop"; remaining: number; match: RequestMatch }
  | { kind: "delay"; remaining: number; match: RequestMatch; ms: number }
  | { kind: "flood"; remaining: number; match: RequestMatch; bytes: number; announce: boolean; result: FloodResult & { onClosed: () => void } };

/** What a flood answer managed to send before the client hung up (or the body ended). */
export interface FloodResult {
  /** Body bytes the server handed to the socket. */
  sent: number;
  /** The body's announced size. */
  size: number;
  /** True once the response ended or its socket closed. */
  done: boolean;
  /** Resolves when `done` turns true. */
  closed: Promise<void>;
}

const FLOOD_CHUNK = Buffer.alloc(64 * 1024, 0x20);

function matches(match: RequestMatch, req: Request): boolean {
  if (match.method !== undefined && match.method.toUpperCase() !== req.method) return false;
  if (match.path === undefined) return true;
  return typeof match.path === "string" ? match.path === req.path : match.path.test(req.path);
}

function checkCount(n: number): void {
  if (!(Number.isInteger(n) && n >= 0) && n !== Infinity) throw new RangeError(`fault count must be a non-negative integer, got ${n}`);
}

/** Writes `bytes` of body, respecting backpressure, until done or the client closes. */
function flood(res: Response, bytes: number, announce: boolean, result: FloodResult & { onClosed: () => void }): void {
  res.status(200).set("content-type", "application/json");
  if (announce) res.set("content-length", String(bytes));
  const head = Buffer.from('{"pad":"');
  const finish = (): void => {
    result.done = true;
    result.onClosed();
  };
  res.once("close", finish);
  const pump = (): void => {
    while (result.sent < bytes && !res.destroyed) {
      const chunk = result.sent === 0 ? head : FLOOD_CHUNK;
      const piece = chunk.subarray(0, Math.min(chunk.length, bytes - result.sent));
      result.sent += piece.length;
      if (!res.write(piece)) {
        res.once("drain", pump);
        return;
      }
    }
    if (result.sent >= bytes) res.end();
  };
  pump();
}

/**
 * Answers requests wrongly on purpose. A delay rule and a fail/drop rule can
 * both apply to one request: it is delayed first, then failed or dropped.
 * Rules are consumed in the order they were added.
 */
export class FaultInjector {
  private rules: Rule[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();

  failNext(n: number, status: number, body: unknown = { error: "Injected failure" }, options: FaultOptions = {}): void {
    checkCount(n);
    if (!Number.isInteger(status) || status < 100 || status > 599) throw new RangeError(`status must be 100-599, got ${status}`);
    const { headers = {}, ...match } = options;
    this.rules.push({ kind: "fail", remaining: n, match, status, body, headers });
  }

  dropNext(n: number, match: RequestMatch = {}): void {
    checkCount(n);
    this.rules.push({ kind: "drop", remaining: n, match });
  }

  delayNext(n: number, ms: number, match: RequestMatch = {}): void {
    checkCount(n);
    if (!(ms >= 0)) throw new RangeError(`delay must be >= 0 ms, got ${ms}`);
    this.rules.push({ kind: "delay", remaining: n, match, ms });
  }

  /**
   * Answers the next n matching requests 200 with a JSON body of `bytes`
   * bytes (`{"pad":"     ...`, never complete JSON), streamed in 64 KiB
   * chunks as fast as the client reads them, without holding the body in
   * memory. The returned result says how much was sent before the client
   * gave up: a client that bounds what it reads stops far below `bytes`.
   * Sent chunked unless `contentLength` announces the size up front.
   */
  floodNext(n: number, bytes: number, options: RequestMatch & { contentLength?: boolean } = {}): FloodResult {
    const { contentLength = false, ...match } = options;
    checkCount(n);
    if (!(Number.isSafeInteger(bytes) && bytes > 0)) throw new RangeError(`flood size must be a positive integer, got ${bytes}`);
    let onClosed!: () => void;
    const closed = new Promise<void>((resolve) => (onClosed = resolve));
    const result: FloodResult & { onClosed: () => void } = { sent: 0, size: bytes, done: false, closed, onClosed };
    this.rules.push({ kind: "flood", remaining: n, match, bytes, announce: contentLength, result });
    return result;
  }

  clear(): void {
    this.rules = [];
  }

  /** Stops pending delays so a closed server leaves no timers behind. */
  cancelTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private take(kinds: Array<Rule["kind"]>, req: Request): Rule | undefined {
    const rule = this.rules.find((r) => kinds.includes(r.kind) && r.remaining > 0 && matches(r.match, req));
    if (rule) {
      rule.remaining -= 1;
      this.rules = this.rules.filter((r) => r.remaining > 0);
    }
    return rule;
  }

  /** Runs after the request was recorded; marks the recorded entry (res.locals.recorded) with the fault. */
  middleware() {
    return (req: Request, res: Response, next: NextFunction): void => {
      const proceed = (): void => {
        const rule = this.take(["fail", "drop", "flood"], req);
        if (!rule) return next();
        const entry = res.locals.recorded as RecordedRequest | undefined;
        if (entry && rule.kind !== "delay") entry.fault = rule.kind;
        if (rule.kind === "flood") {
          flood(res, rule.bytes, rule.announce, rule.result);
          return;
        }
        if (rule.kind === "drop") {
          req.socket.destroy();
          return;
        }
        if (rule.kind === "fail") {
          res.set(rule.headers);
          if (typeof rule.body === "string" || Buffer.isBuffer(rule.body)) res.status(rule.status).send(rule.body);
          else res.status(rule.status).json(rule.body);
        }
      };
      const delay = this.take(["delay"], req);
      if (!delay || delay.kind !== "delay") return proceed();
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        proceed();
      }, delay.ms);
      this.timers.add(timer);
    };
  }
}
