import type { LineEvent, LogEvent, LogStream } from "./log-stream.js";

/** Lines read from the history in one go. */
const HISTORY_BATCH = 1000;

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
  /** Lines read from the history and not handed out yet (cursor is past them once handed out). */
  private historyCache: LineEvent[] = [];

  /**
   * `lateUpTo`: the last line appended before this reader came. Those it may
   * read from the job's history on disk whatever their age (it came late,
   * it was not slow); lines appended later follow the live rule (a reader
   * more than `maxQueue` behind skips ahead and is told).
   */
  constructor(stream: LogStream<E>, cursor: number, maxQueue: number, private readonly lateUpTo = 0) {
    this.stream = stream;
    this.cursor = cursor;
    this.maxQueue = maxQueue;
  }

  /** @internal The seq this reader wants next. */
  get nextSeq(): number {
    return this.cursor;
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
      if (this.historyCache.length > 0 || this.behindOnDisk()) {
        const fromDisk = await this.fromHistory(max);
        if (this.closed) return [];
        if (fromDisk.length > 0) return fromDisk;
      }
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
    this.historyCache = [];
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

  /** Whether the next line this reader wants came before it did, has left the ring, and is in the history. */
  private behindOnDisk(): boolean {
    const history = this.stream.history;
    return history !== undefined && this.cursor <= this.lateUpTo && this.cursor < this.stream.firstSeq && this.cursor <= history.coveredUpTo;
  }

  /**
   * Up to `max` lines behind the ring, from the job's history on disk, read
   * HISTORY_BATCH at a time (none when there is none to read).
   */
  private async fromHistory(max: number): Promise<LineEvent[]> {
    if (this.historyCache.length === 0) {
      const history = this.stream.history;
      if (history === undefined || !this.behindOnDisk()) return [];
      const from = this.cursor;
      const lines = await history.read(from, Math.min(this.stream.firstSeq - from, this.lateUpTo - from + 1, HISTORY_BATCH));
      if (lines === undefined || this.cursor !== from || this.historyCache.length > 0) return [];
      this.historyCache = lines.map((line, i) => ({ type: "line", seq: from + i, line }));
    }
    const out = this.historyCache.splice(0, Math.max(1, Math.min(max, this.historyCache.length)));
    this.cursor += out.length;
    return out;
  }

  private take(max: number): LogEvent<E>[] {
    const out: LogEvent<E>[] = [];
    const last = this.stream.lastSeq;
    // Behind the ring (and not on disk), or a live reader further behind than it may be: skip to what is kept.
    // Lines from before this reader came are not skipped for its queue: it came late, it was not slow.
    const catchingUp = this.stream.history !== undefined && this.cursor <= this.lateUpTo;
    const keepFrom = catchingUp ? this.stream.firstSeq : Math.max(this.stream.firstSeq, last - this.maxQueue + 1);
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
