import type { Logger } from "@kitt/protocol";

import type { StatusSnapshot } from "./types.js";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Asks the daemon for its figures, bounded in time: a hung GPU query must not
 * stop the heartbeat, so after `timeoutMs` (or a throw) the heartbeat goes out
 * with the last known status and no figures. Logged once per streak.
 */
export class StatusReader {
  private last: Pick<StatusSnapshot, "status" | "current_task"> | null = null;
  private failing = false;

  constructor(
    private readonly provider: () => StatusSnapshot | Promise<StatusSnapshot>,
    private readonly timeoutMs: number,
    private readonly logger: Logger,
  ) {}

  /** True when the last good snapshot said a job is running. */
  get running(): boolean {
    return this.last?.status === "running";
  }

  async read(): Promise<Partial<StatusSnapshot>> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      const snapshot = await Promise.race([Promise.resolve().then(() => this.provider()), timeout]);
      if (this.failing) this.logger.info("status figures are available again");
      this.failing = false;
      this.last = { status: snapshot.status, current_task: snapshot.current_task ?? "" };
      return snapshot;
    } catch (err) {
      if (!this.failing) this.logger.warn(`status provider failed (${message(err)}); heartbeats go out without figures`);
      this.failing = true;
      return this.last ?? { status: "idle" };
    } finally {
      clearTimeout(timer);
    }
  }
}
