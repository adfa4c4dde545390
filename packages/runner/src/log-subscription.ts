import type { LogEvent, LogStream } from "./log-stream.js";

/** One reader of a LogStream: `for await (const event of sub)`, `next()` or `nextBatch()`. */
export class LogSubscription<E = unknown> implements AsyncIterable<LogEvent<E>> {
  readonly maxQueue: number;
  private readonly stream: LogStream<E>;
  /** The seq this reader wants next. */
  private cursor: number;
  private totalDropped = 0;
  private endSent = false;
  private closed = false;
  private pending: (() => void) | undefined;
  /** Events taken from the stream that next() has not handed out yet (at most a dropped, a line, the end). */
  private ready: LogEvent<E>[] = [];

  constructor(stream: LogStream<E>, cursor: number, maxQueue: number) {
    this.stream = stream;
    this.cursor = cursor;
    this.maxQueue = maxQueue;
  }

  /** Lines this subscriber has lost so far. */
  get dropped(): number {
    return this.totalDropped;
  }

  /** The next event, waiting for one if needed; undefined once the end was read or after close(). */
  async next(): Promise<LogEvent<E> | undefined> {
    if (this.ready.length === 0) this.ready = await this.nextBatch(1);
    return this.ready.shift();
  }

  /**
   * Every event available now (at most `max` lines, plus a `dropped` before
   * them and the `end` after them), waiting for at least one if there is
   * none; an empty array once the end was read or after close().
   */
  async nextBatch(max = Infinity): Promise<LogEvent<E>[]> {
    if (this.ready.length > 0 && !this.closed) return this.ready.splice(0);
    for (;;) {
      if (this.closed || this.endSent) return [];
      const batch = this.take(max);
      if (batch.length > 0) return batch;
      await new Promise<void>((resolve) => {
        this.pending = resolve;
        this.stream.park(resolve);
      });
      this.pending = undefined;
    }
  }

  /**
   * Waits until `lines` unread lines are there, the stream ends, this
   * subscription closes, or `maxWaitMs` passes, whichever comes first: lets
   * a reader of a quiet job send lines in batches without falling behind a
   * chatty one. Costs the producer nothing per line until the backlog is reached.
   */
  async settle(lines: number, maxWaitMs: number): Promise<void> {
    if (this.closed || this.endSent) return;
    const target = this.cursor + Math.max(1, lines) - 1;
    let wake!: () => void;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      wake = resolve;
      this.pending = resolve;
      timer = setTimeout(resolve, maxWaitMs);
      timer.unref();
      this.stream.parkUntil(target, resolve);
    });
    clearTimeout(timer);
    this.stream.unparkUntil(target, wake);
    this.pending = undefined;
  }

  /** Stops receiving; a pending next() resolves undefined. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ready = [];
    this.stream.detach(this);
    const pending = this.pending;
    if (pending !== undefined) {
      this.stream.unpark(pending);
      pending();
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<LogEvent<E>> {
    try {
      for (;;) {
        const event = await this.next();
        if (event === undefined) return;
        yield event;
        if (event.type === "end") return;
      }
    } finally {
      this.close();
    }
  }

  private take(max: number): LogEvent<E>[] {
    const out: LogEvent<E>[] = [];
    const last = this.stream.lastSeq;
    // Behind the ring, or further behind than this reader may be: skip to what is kept.
    const keepFrom = Math.max(this.stream.firstSeq, last - this.maxQueue + 1);
    if (this.cursor < keepFrom) {
      const lost = keepFrom - this.cursor;
      this.totalDropped += lost;
      this.cursor = keepFrom;
      out.push({ type: "dropped", count: lost });
    }
    for (const event of this.stream.range(this.cursor, max)) out.push(event);
    this.cursor += out.length - (out[0]?.type === "dropped" ? 1 : 0);
    const end = this.stream.endState;
    if (end !== undefined && this.cursor > last) {
      out.push({ type: "end", info: end.info });
      this.endSent = true;
      this.stream.detach(this);
    }
    return out;
  }
}
