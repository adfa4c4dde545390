import { type Logger, ServerError } from "@kitt/protocol";

import type { HeartbeatHealth } from "./types.js";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function isAuthError(err: unknown): err is ServerError {
  return err instanceof ServerError && (err.status === 401 || err.status === 403);
}

/**
 * Counts outcomes and decides what to log: one line when trouble starts (or
 * changes kind), one when it ends, the attempts in between at debug level,
 * so an outage of an hour is two lines in the journal, not a hundred.
 */
export class HealthTracker {
  health: HeartbeatHealth = "starting";
  successes = 0;
  failures = 0;
  consecutiveFailures = 0;
  lastSuccessAt: number | null = null;
  lastError: string | null = null;
  /** The server's Retry-After on the last failure, if it sent one. */
  retryAfterMs: number | undefined;
  private failingSince: number | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly capMs: number,
    private readonly describeAgent: () => string,
    private readonly onChange: (health: HeartbeatHealth) => void,
  ) {}

  succeeded(now: number): void {
    if (this.health === "failing" || this.health === "unauthorized") {
      const since = this.failingSince ?? now;
      this.logger.info(`heartbeat recovered after ${this.consecutiveFailures} failed attempt(s) over ${Math.round((now - since) / 1000)} s`);
    }
    this.successes++;
    this.consecutiveFailures = 0;
    this.lastSuccessAt = now;
    this.lastError = null;
    this.retryAfterMs = undefined;
    this.failingSince = null;
    this.set("ok");
  }

  /** `attemptAt`: when the failed attempt began (the outage is dated from the first one). */
  failed(err: unknown, attemptAt: number): void {
    const text = message(err);
    this.failures++;
    this.consecutiveFailures++;
    this.lastError = text;
    this.failingSince ??= attemptAt;
    this.retryAfterMs = (err as { retryAfterMs?: number }).retryAfterMs;
    const next: HeartbeatHealth = isAuthError(err) ? "unauthorized" : "failing";
    if (next === this.health) {
      this.logger.debug(`heartbeat attempt ${this.consecutiveFailures} failed: ${text}`);
      return;
    }
    const cap = Math.round(this.capMs / 1000);
    if (next === "unauthorized") {
      this.logger.error(
        `heartbeat rejected: ${text}. The KITT server does not accept this agent's token for ${this.describeAgent()}; ` +
          `fix "token" in agent.yaml (or the server's agent record). Agent status is now "error"; retrying every ${cap} s`,
      );
    } else {
      this.logger.warn(`heartbeat failing: ${text}; retrying with backoff up to ${cap} s`);
    }
    this.set(next);
  }

  private set(health: HeartbeatHealth): void {
    if (health === this.health) return;
    this.health = health;
    this.onChange(health);
  }
}
