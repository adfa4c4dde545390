import type { LogHistory } from "./log-history.js";
import { LogSubscription } from "./log-subscription.js";

export { LogSubscription };

/** Lines a late subscriber can still see. */
export const DEFAULT_RING_LINES = 1000;
/** The ring also stops at this many characters: 1,000 lines cut at 64 Ki each would be 64 MiB a job. */
export const DEFAULT_RING_CHARS = 4 * 1024 * 1024;
/** Lines a subscriber may fall behind by before it skips ahead (and is told how many it lost). */
export const DEFAULT_SUBSCRIBER_QUEUE = 1000;

export interface LogEntry {
  /** 1, 2, 3, ... per stream, never reused: usable as an SSE `id:`. */
  seq: number;
  line: string;
}

/** A line as readers receive it: one object per line, shared by every reader. */
export interface LineEvent {
  type: "line";
  seq: number;
  line: string;
}

export type LogEvent<E = unknown> =
  | LineEvent
  /** `count` lines were lost between the previous event and the next one. */
  | { type: "dropped"; count: number }
  | { type: "end"; info: E };

export interface SubscribeOptions {
  /** Replay buffered lines with a greater seq (SSE Last-Event-ID); default: the whole buffer. */
  afterSeq?: number;
  /** Skip the buffer: live lines only. */
  liveOnly?: boolean;
  /** How far (in lines) this subscriber may fall behind before it skips to the newest lines (default 1000). */
  maxQueue?: number;
}

/**
 * One job's log: a ring buffer of the last lines, read by any number of
 * subscribers. Appending never waits for anybody and costs the same with
 * 500 readers as with none: readers are not pushed to; each keeps its own
 * position (a seq) and pulls what is new from the ring when it is ready,
 * in batches. A reader that falls behind by more than its `maxQueue` (or
 * past the ring) skips to the newest lines and receives a `dropped` event
 * saying how many it lost, where they were lost.
 */
export class LogStream<E = unknown> {
  private readonly ring: (LineEvent | undefined)[];
  private ringStart = 0;
  private ringCount = 0;
  private ringChars = 0;
  private readonly maxRingChars: number;
  private seq = 0;
  private readonly subs = new Set<LogSubscription<E>>();
  /** Readers parked until something new arrives; woken once, then they pull. */
  private waiters: (() => void)[] = [];
  /** Readers parked until a given seq is appended (a backlog of n lines): one map lookup per line. */
  private readonly dueAt = new Map<number, (() => void)[]>();
  private endInfo: { info: E } | undefined;
  /** The whole log on disk, when kept: readers behind the ring read it there instead of losing lines. */
  readonly history: LogHistory | undefined;

  constructor(ringLines: number = DEFAULT_RING_LINES, ringChars: number = DEFAULT_RING_CHARS, history?: LogHistory) {
    this.ring = new Array<LineEvent | undefined>(Math.max(1, ringLines));
    this.maxRingChars = ringChars;
    this.history = history;
  }

  /** Seq of the last line appended (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  get ended(): boolean {
    return this.endInfo !== undefined;
  }

  /** @internal The end info once ended. */
  get endState(): { info: E } | undefined {
    return this.endInfo;
  }

  get subscriberCount(): number {
    return this.subs.size;
  }

  /** Seq of the oldest buffered line (lastSeq + 1 when the ring is empty). */
  get firstSeq(): number {
    return this.ring[this.ringStart]?.seq ?? this.seq + 1;
  }

  append(line: string): LogEntry {
    if (this.endInfo !== undefined) throw new Error("log stream already ended");
    const event: LineEvent = { type: "line", seq: ++this.seq, line };
    this.history?.append(event.seq, line);
    const cap = this.ring.length;
    if (this.ringCount === cap) this.dropOldest();
    this.ring[(this.ringStart + this.ringCount) % cap] = event;
    this.ringCount++;
    this.ringChars += line.length;
    while (this.ringChars > this.maxRingChars && this.ringCount > 1) this.dropOldest();
    if (this.waiters.length > 0) this.wakeAll();
    if (this.dueAt.size > 0) {
      const due = this.dueAt.get(event.seq);
      if (due !== undefined) {
        this.dueAt.delete(event.seq);
        for (const wake of due) wake();
      }
    }
    return { seq: event.seq, line };
  }

  private dropOldest(): void {
    const oldest = this.ring[this.ringStart];
    this.ringChars -= oldest?.line.length ?? 0;
    this.ring[this.ringStart] = undefined;
    this.ringStart = (this.ringStart + 1) % this.ring.length;
    this.ringCount--;
  }

  private wakeAll(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private wakeAllDue(): void {
    const due = [...this.dueAt.values()].flat();
    this.dueAt.clear();
    for (const wake of due) wake();
  }

  /**
   * Resolves once no reader is more than half the ring behind, or after
   * `maxWaitMs`: for a producer that can choose when to take its next lines
   * (the benchmark's output file), so that a live reader keeps up with a
   * burst instead of skipping ahead. The wait is bounded: a crowd of slow
   * readers delays the lines by at most that much a call, never stops them.
   */
  async letReadersCatchUp(maxWaitMs: number): Promise<void> {
    const deadline = performance.now() + maxWaitMs;
    while (this.readerLag() > this.ring.length / 2 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  /** How far the slowest reader is behind the newest line. */
  private readerLag(): number {
    let lag = 0;
    for (const sub of this.subs) lag = Math.max(lag, this.seq + 1 - sub.nextSeq);
    return lag;
  }

  /** Marks the end; subscribers get an `end` event after the lines they have yet to read. */
  end(info: E): void {
    if (this.endInfo !== undefined) return;
    this.endInfo = { info };
    void this.history?.close();
    this.wakeAll();
    this.wakeAllDue();
  }

  /** The buffered lines with a seq greater than `afterSeq`, oldest first. */
  buffered(afterSeq = 0): LogEntry[] {
    return this.range(afterSeq + 1, Infinity).map(({ seq, line }) => ({ seq, line }));
  }

  /** @internal Buffered lines with fromSeq <= seq, at most `max` of them. */
  range(fromSeq: number, max: number): LineEvent[] {
    const first = this.firstSeq;
    const from = Math.max(fromSeq, first);
    const count = Math.min(max, this.seq - from + 1);
    const out: LineEvent[] = [];
    for (let i = 0; i < count; i++) {
      const entry = this.ring[(this.ringStart + (from - first) + i) % this.ring.length];
      if (entry !== undefined) out.push(entry);
    }
    return out;
  }

  /** @internal Parks a reader until the next line or the end. */
  park(wake: () => void): void {
    this.waiters.push(wake);
  }

  /** @internal */
  unpark(wake: () => void): void {
    const i = this.waiters.indexOf(wake);
    if (i !== -1) this.waiters.splice(i, 1);
  }

  /** @internal Parks a reader until line `seq` is appended or the stream ends; at once if that already happened. */
  parkUntil(seq: number, wake: () => void): void {
    if (this.seq >= seq || this.endInfo !== undefined) {
      wake();
      return;
    }
    const list = this.dueAt.get(seq);
    if (list === undefined) this.dueAt.set(seq, [wake]);
    else list.push(wake);
  }

  /** @internal */
  unparkUntil(seq: number, wake: () => void): void {
    const list = this.dueAt.get(seq);
    const i = list?.indexOf(wake) ?? -1;
    if (list === undefined || i === -1) return;
    list.splice(i, 1);
    if (list.length === 0) this.dueAt.delete(seq);
  }

  /** @internal */
  detach(sub: LogSubscription<E>): void {
    this.subs.delete(sub);
  }

  subscribe(options: SubscribeOptions = {}): LogSubscription<E> {
    const from = options.liveOnly === true ? this.seq + 1 : Math.max(0, options.afterSeq ?? 0) + 1;
    const sub = new LogSubscription<E>(this, from, Math.max(1, options.maxQueue ?? DEFAULT_SUBSCRIBER_QUEUE), this.seq);
    this.subs.add(sub);
    return sub;
  }
}
