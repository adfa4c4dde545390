/** Lines a late subscriber can still see. */
export const DEFAULT_RING_LINES = 1000;
/** The ring also stops at this many characters: 1,000 lines cut at 64 Ki each would be 64 MiB a job. */
export const DEFAULT_RING_CHARS = 4 * 1024 * 1024;
/** Events a subscriber may fall behind by before it starts losing lines. */
export const DEFAULT_SUBSCRIBER_QUEUE = 1000;

export interface LogEntry {
  /** 1, 2, 3, ... per stream, never reused: usable as an SSE `id:`. */
  seq: number;
  line: string;
}

export type LogEvent<E = unknown> =
  | { type: "line"; seq: number; line: string }
  /** `count` lines were lost between the previous event and the next one. */
  | { type: "dropped"; count: number }
  | { type: "end"; info: E };

export interface SubscribeOptions {
  /** Replay buffered lines with a greater seq (SSE Last-Event-ID); default: the whole buffer. */
  afterSeq?: number;
  /** Skip the buffer: live lines only. */
  liveOnly?: boolean;
  /** Bound of this subscriber's queue (default 1000 events). */
  maxQueue?: number;
}

/**
 * One job's log: a ring buffer of the last lines for late subscribers and a
 * live fan-out to any number of subscribers. Appending never waits for
 * anybody: each subscriber has its own bounded queue, and one that does not
 * keep up loses lines (it receives a `dropped` event saying how many, where
 * they were lost) instead of slowing the benchmark or the other readers.
 */
export class LogStream<E = unknown> {
  private readonly ring: (LogEntry | undefined)[];
  private ringStart = 0;
  private ringCount = 0;
  private ringChars = 0;
  private readonly maxRingChars: number;
  private seq = 0;
  private readonly subs = new Set<LogSubscription<E>>();
  private endInfo: { info: E } | undefined;

  constructor(ringLines: number = DEFAULT_RING_LINES, ringChars: number = DEFAULT_RING_CHARS) {
    this.ring = new Array<LogEntry | undefined>(Math.max(1, ringLines));
    this.maxRingChars = ringChars;
  }

  /** Seq of the last line appended (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  get ended(): boolean {
    return this.endInfo !== undefined;
  }

  get subscriberCount(): number {
    return this.subs.size;
  }

  append(line: string): LogEntry {
    if (this.endInfo !== undefined) throw new Error("log stream already ended");
    const entry: LogEntry = { seq: ++this.seq, line };
    const cap = this.ring.length;
    if (this.ringCount === cap) this.dropOldest();
    this.ring[(this.ringStart + this.ringCount) % cap] = entry;
    this.ringCount++;
    this.ringChars += line.length;
    while (this.ringChars > this.maxRingChars && this.ringCount > 1) this.dropOldest();
    for (const sub of this.subs) sub.offer(entry);
    return entry;
  }

  private dropOldest(): void {
    const oldest = this.ring[this.ringStart];
    this.ringChars -= oldest?.line.length ?? 0;
    this.ring[this.ringStart] = undefined;
    this.ringStart = (this.ringStart + 1) % this.ring.length;
    this.ringCount--;
  }

  /** Marks the end; subscribers get an `end` event after their queued lines. */
  end(info: E): void {
    if (this.endInfo !== undefined) return;
    this.endInfo = { info };
    for (const sub of this.subs) sub.finish(info);
  }

  /** The buffered lines with a seq greater than `afterSeq`, oldest first. */
  buffered(afterSeq = 0): LogEntry[] {
    const out: LogEntry[] = [];
    for (let i = 0; i < this.ringCount; i++) {
      const entry = this.ring[(this.ringStart + i) % this.ring.length];
      if (entry !== undefined && entry.seq > afterSeq) out.push(entry);
    }
    return out;
  }

  subscribe(options: SubscribeOptions = {}): LogSubscription<E> {
    const sub = new LogSubscription<E>(Math.max(1, options.maxQueue ?? DEFAULT_SUBSCRIBER_QUEUE), () => this.subs.delete(sub));
    if (options.liveOnly !== true) {
      const after = Math.max(0, options.afterSeq ?? 0);
      const replay = this.buffered(after);
      // Lines older than the ring (or than the queue can hold) are reported as lost.
      const firstKept = replay.length > sub.maxQueue ? replay.length - sub.maxQueue : 0;
      const oldestSeq = replay[0]?.seq ?? this.seq + 1;
      const lost = Math.max(0, oldestSeq - after - 1) + firstKept;
      if (lost > 0) sub.noteDropped(lost);
      for (const entry of replay.slice(firstKept)) sub.offer(entry);
    }
    if (this.endInfo !== undefined) sub.finish(this.endInfo.info);
    else this.subs.add(sub);
    return sub;
  }
}

/** One reader of a LogStream: `for await (const event of sub)`, or `next()`. */
export class LogSubscription<E = unknown> implements AsyncIterable<LogEvent<E>> {
  readonly maxQueue: number;
  private readonly queue: LogEvent<E>[] = [];
  private lines = 0;
  private pendingDropped = 0;
  private totalDropped = 0;
  private finished = false;
  private closed = false;
  private waiter: ((event: LogEvent<E> | undefined) => void) | undefined;
  private readonly detach: () => void;

  constructor(maxQueue: number, detach: () => void) {
    this.maxQueue = maxQueue;
    this.detach = detach;
  }

  /** Lines this subscriber has lost so far. */
  get dropped(): number {
    return this.totalDropped;
  }

  /** The next event, waiting for one if needed; undefined once the end was read or after close(). */
  next(): Promise<LogEvent<E> | undefined> {
    const event = this.take();
    if (event !== undefined || this.closed || this.finishedAndEmpty()) return Promise.resolve(event);
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** Stops receiving; a pending next() resolves undefined. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.detach();
    this.wake(undefined);
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

  /** @internal Called by the stream for every new line. */
  offer(entry: LogEntry): void {
    if (this.closed || this.finished) return;
    if (this.waiter !== undefined && this.queue.length === 0 && this.pendingDropped === 0) {
      this.wake({ type: "line", seq: entry.seq, line: entry.line });
      return;
    }
    if (this.lines >= this.maxQueue) {
      this.noteDropped(1);
      return;
    }
    this.flushDropped();
    this.queue.push({ type: "line", seq: entry.seq, line: entry.line });
    this.lines++;
    this.wakeWithQueued();
  }

  /** @internal */
  noteDropped(count: number): void {
    this.pendingDropped += count;
    this.totalDropped += count;
  }

  /** @internal */
  finish(info: E): void {
    if (this.closed || this.finished) return;
    this.flushDropped();
    this.queue.push({ type: "end", info });
    this.finished = true;
    this.detach();
    this.wakeWithQueued();
  }

  private flushDropped(): void {
    if (this.pendingDropped === 0) return;
    this.queue.push({ type: "dropped", count: this.pendingDropped });
    this.pendingDropped = 0;
  }

  private take(): LogEvent<E> | undefined {
    const event = this.queue.shift();
    if (event?.type === "line") this.lines--;
    if (event === undefined && this.pendingDropped > 0) {
      const dropped: LogEvent<E> = { type: "dropped", count: this.pendingDropped };
      this.pendingDropped = 0;
      return dropped;
    }
    return event;
  }

  private finishedAndEmpty(): boolean {
    return this.finished && this.queue.length === 0;
  }

  private wakeWithQueued(): void {
    if (this.waiter === undefined) return;
    this.wake(this.take());
  }

  private wake(event: LogEvent<E> | undefined): void {
    const waiter = this.waiter;
    if (waiter === undefined) return;
    this.waiter = undefined;
    waiter(event);
  }
}
