import type { NextFunction, Request, Response } from "express";
import type { FaultOptions, RecordedRequest, RequestMatch } from "./fake-server-types.js";

type Rule =
  | { kind: "fail"; remaining: number; match: RequestMatch; status: number; body: unknown; headers: Record<string, string> }
  | { kind: "drop"; remaining: number; match: RequestMatch }
  | { kind: "delay"; remaining: number; match: RequestMatch; ms: number };

function matches(match: RequestMatch, req: Request): boolean {
  if (match.method !== undefined && match.method.toUpperCase() !== req.method) return false;
  if (match.path === undefined) return true;
  return typeof match.path === "string" ? match.path === req.path : match.path.test(req.path);
}

function checkCount(n: number): void {
  if (!(Number.isInteger(n) && n >= 0) && n !== Infinity) throw new RangeError(`fault count must be a non-negative integer, got ${n}`);
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
        const rule = this.take(["fail", "drop"], req);
        if (!rule) return next();
        const entry = res.locals.recorded as RecordedRequest | undefined;
        if (entry && rule.kind !== "delay") entry.fault = rule.kind;
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
