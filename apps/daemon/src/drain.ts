import type { AgentLogger } from "./logging.js";

/** The reason logged when a drained agent stops (no job is left for it to cancel). */
export const DRAINED_REASON = "Agent drained";

export interface DrainDeps {
  /**
   * Stops pulling commands: the heartbeat loop stops (the server hands out a
   * command with every heartbeat response); resolves once a heartbeat in
   * flight has finished and its commands are accepted.
   */
  stopIntake(): Promise<void>;
  /** Jobs running or waiting in the queue (service containers do not count: they end only on request). */
  pending(): { running: number; queued: number };
  /** The normal stop; after a drain nothing is left for it to cancel. */
  stop(reason: string): Promise<void>;
  logger: AgentLogger;
}

export interface DrainStart {
  draining: true;
  running: number;
  queued: number;
}

/**
 * `kitt-agent stop --drain`: take no new job, let every accepted one finish
 * (the running one and those queued behind it: the server never sends a
 * command twice, so one accepted and then dropped would be lost), then stop.
 * While draining the agent sends no heartbeat, since each one may bring a
 * command; the jobs' logs, statuses and results still reach the server. A
 * stop meanwhile (SIGTERM, the CLI's --timeout) cancels what still runs as
 * usual, and the drain ends with it.
 */
export class Drainer {
  private run: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly deps: DrainDeps) {}

  get draining(): boolean {
    return this.run !== undefined;
  }

  /** The runner's onIdle: the queue may have emptied. */
  idle(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Starts draining (again: a no-op); says what is still to finish. */
  start(): DrainStart {
    const { running, queued } = this.deps.pending();
    this.run ??= this.drain(running, queued).catch((err: unknown) => {
      this.deps.logger.error(`drain failed: ${(err as Error).message}; stopping`);
      return this.deps.stop(DRAINED_REASON);
    });
    return { draining: true, ...this.deps.pending() };
  }

  private async drain(running: number, queued: number): Promise<void> {
    const { logger } = this.deps;
    logger.info(`draining: no new jobs (no heartbeats, the local API refuses commands); ${running} running and ${queued} queued job(s) finish first, then the agent stops`);
    await this.deps.stopIntake();
    for (;;) {
      const left = this.deps.pending();
      if (left.running + left.queued === 0) break;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    logger.info("drained: every accepted job has finished");
    await this.deps.stop(DRAINED_REASON);
  }
}
