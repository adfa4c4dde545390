import { sleep as defaultSleep } from "@kitt/protocol";

/**
 * A backoff wait that can be cut short: `retryNow()` ends the current wait,
 * or makes the next one return at once when nobody is waiting (on shutdown,
 * or when the heartbeat sees the server come back).
 */
export class BackoffWaiter {
  private abort: AbortController | undefined;
  private skipNext = false;

  constructor(private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void> = defaultSleep) {}

  retryNow(): void {
    if (this.abort !== undefined) this.abort.abort();
    else this.skipNext = true;
  }

  /** Waits `ms`; returns early on retryNow() or once `stop` aborts. Never throws. */
  async wait(ms: number, stop: AbortSignal): Promise<void> {
    if (this.skipNext) {
      this.skipNext = false;
      return;
    }
    const abort = new AbortController();
    this.abort = abort;
    const onStop = () => abort.abort();
    stop.addEventListener("abort", onStop, { once: true });
    try {
      await this.sleep(ms, abort.signal);
    } catch {
      // woken early: by retryNow() or by stop()
    } finally {
      stop.removeEventListener("abort", onStop);
      this.abort = undefined;
    }
  }
}

/**
 * Resolves true when `register`'s callback is called, false once `timeoutMs`
 * passes first: a bounded wait for "everything delivered".
 */
export async function waitOrTimeout(register: (done: () => void) => void, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const ok = await Promise.race([
    new Promise<boolean>((resolve) => register(() => resolve(true))),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  return ok;
}
