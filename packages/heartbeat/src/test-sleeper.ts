/** A sleep the test fires by hand, so a heartbeat cadence of minutes runs in milliseconds. */
export interface PendingSleep {
  ms: number;
  fire(): void;
}

export class ManualSleeper {
  /** Every wait the loop asked for, in order. */
  readonly requested: number[] = [];
  private pending: PendingSleep | null = null;
  private waiters: Array<(sleep: PendingSleep) => void> = [];

  readonly sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      this.requested.push(ms);
      const onAbort = () => {
        if (this.pending === entry) this.pending = null;
        reject(signal?.reason);
      };
      const entry: PendingSleep = {
        ms,
        fire: () => {
          signal?.removeEventListener("abort", onAbort);
          if (this.pending === entry) this.pending = null;
          resolve();
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.pending = entry;
      for (const waiter of this.waiters.splice(0)) waiter(entry);
    });

  /** True while the loop sits in a wait. */
  get sleeping(): boolean {
    return this.pending !== null;
  }

  /**
   * The wait the loop is in now, or the next one it enters. The bound only
   * names a loop that never gets there: beside another test suite on two
   * cores, one heartbeat exchange has taken more than 4 s.
   */
  next(timeoutMs = 20_000): Promise<PendingSleep> {
    if (this.pending !== null) return Promise.resolve(this.pending);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`the loop did not start waiting within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (sleep: PendingSleep) => {
        clearTimeout(timer);
        resolve(sleep);
      };
      this.waiters.push(waiter);
    });
  }

  /** Waits for the loop's next wait, ends it, and returns how long it was. */
  async fireNext(): Promise<number> {
    const sleep = await this.next();
    sleep.fire();
    return sleep.ms;
  }
}
