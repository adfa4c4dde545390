import {
  backoffDelay,
  isSafeId,
  KittError,
  silentLogger,
  type BackoffPolicy,
  type CallOptions,
  type Logger,
} from "@kitt/protocol";

import { errorText } from "./job.js";
import { LogSpool } from "./log-spool.js";
import { classifyDeliveryError } from "./report-errors.js";
import { BackoffWaiter, waitOrTimeout } from "./backoff-waiter.js";

/** The part of KittServerClient the shipper uses. */
export interface LogTransport {
  postLog(testId: string, line: string, opts?: CallOptions): Promise<void>;
}

export const DEFAULT_MAX_BATCH_BYTES = 256 * 1024;
export const DEFAULT_MAX_PENDING_BYTES = 32 * 1024 * 1024;

export interface LogShipperOptions {
  testId: string;
  transport: LogTransport;
  /** Lines are spooled to `<spoolDir>/<spoolName>.log` until delivered (none: memory only). */
  spoolDir?: string;
  /** The spool file's name without `.log` (default the test id; the reporter uses `<test id>.<command id>`). */
  spoolName?: string;
  /** One request carries at most this many bytes of lines (at least one line). */
  maxBatchBytes?: number;
  /** Undelivered lines kept at most; beyond it lines are dropped and a marker line says how many. */
  maxPendingBytes?: number;
  backoff?: BackoffPolicy;
  logger?: Logger;
  /** Called when the spool file's disk refuses appends (the error) and once they work again (undefined). */
  onSpoolDiskError?: (testId: string, error: string | undefined) => void;
  /** After the spool's disk refused an append, how long before the next try (default 5 s). */
  spoolRetryMs?: number;
  /** Called when the server refuses for good (401/403/404...): the shipper gives up on this job. */
  onGiveUp?: (testId: string, err: unknown) => void;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

/** Per-line overhead counted against the cap (queue entry, spool quoting). */
const LINE_OVERHEAD = 16;

/**
 * Ships one job's log lines to `POST /api/v1/quicktest/<test_id>/logs`:
 * in order, one request in flight, and when lines pile up (a fast
 * benchmark, a slow server) several go in one request joined by newlines.
 * push() never waits: lines queue in memory and in a spool file (so a
 * restarted agent can finish the delivery) up to a cap; past the cap lines
 * are dropped and, once there is room again, a marker line says how many.
 */
export class LogShipper {
  readonly testId: string;
  private readonly opts: LogShipperOptions;
  private readonly logger: Logger;
  private readonly maxBatch: number;
  private readonly maxPending: number;
  private queue: string[] = [];
  private head = 0;
  private pendingBytes = 0;
  private droppedSinceMarker = 0;
  private totalDropped = 0;
  private deliveredLines = 0;
  /** Spool records (lines) delivered: the `.pos` file. */
  private deliveredRecords = 0;
  private closed = false;
  private gaveUp = false;
  private readonly spool: LogSpool | undefined;
  private wake: (() => void) | undefined;
  private drainWaiters: (() => void)[] = [];
  private readonly stopping = new AbortController();
  private readonly backoffWaiter: BackoffWaiter;
  private readonly loop: Promise<void>;

  constructor(options: LogShipperOptions, resume?: { lines: string[]; deliveredRecords: number }) {
    if (!isSafeId(options.testId)) throw new KittError(`log shipper: unsafe test id ${JSON.stringify(options.testId)}`, { code: "USAGE" });
    this.testId = options.testId;
    this.opts = options;
    this.logger = options.logger ?? silentLogger;
    this.backoffWaiter = new BackoffWaiter(options.sleep);
    this.maxBatch = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.maxPending = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    const spoolName = options.spoolName ?? options.testId;
    if (!/^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64})?$/.test(spoolName)) throw new KittError(`log shipper: unsafe spool name ${JSON.stringify(spoolName)}`, { code: "USAGE" });
    this.spool = options.spoolDir === undefined ? undefined : new LogSpool(options.spoolDir, spoolName, this.logger, (error) => options.onSpoolDiskError?.(options.testId, error), options.spoolRetryMs);
    if (resume !== undefined) {
      this.deliveredRecords = resume.deliveredRecords;
      for (const line of resume.lines) this.enqueue(line, false);
    }
    this.loop = this.run();
  }

  /** Lines the server acknowledged (a batch counts its lines). */
  get delivered(): number {
    return this.deliveredLines;
  }

  /** Lines dropped because the spool was full. */
  get dropped(): number {
    return this.totalDropped;
  }

  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Queues a line; never blocks. */
  push(line: string): void {
    if (this.closed) return;
    this.enqueue(line, true);
    this.kick();
  }

  /**
   * Resolves true once every line pushed so far is delivered (or the shipper
   * gave up), false if `timeoutMs` passes first.
   */
  async drained(timeoutMs: number): Promise<boolean> {
    if (this.isDrained()) return true;
    return waitOrTimeout((done) => this.drainWaiters.push(done), timeoutMs);
  }

  /** No more lines: deliver the rest, then remove the spool files. Resolves when done (or stopped). */
  async close(): Promise<void> {
    this.closed = true;
    this.kick();
    await this.loop;
  }

  /** Stops delivering now; the spool stays for the next start. */
  async stop(): Promise<void> {
    this.stopping.abort(new Error("log shipper stopped"));
    this.kick();
    await this.loop;
    await this.spool?.stop();
  }

  private enqueue(line: string, toDisk: boolean): void {
    // Characters, not bytes: exact enough for a memory cap and much cheaper per line.
    const bytes = line.length + LINE_OVERHEAD;
    if (this.pendingBytes + bytes > this.maxPending && this.pending > 0) {
      this.droppedSinceMarker++;
      this.totalDropped++;
      return;
    }
    this.addDropMarker(toDisk);
    this.add(line, toDisk);
  }

  /** Where lines were dropped, a line says how many (in their place, in order). */
  private addDropMarker(toDisk: boolean): void {
    if (this.droppedSinceMarker === 0) return;
    const n = this.droppedSinceMarker;
    this.droppedSinceMarker = 0;
    this.add(`[kitt-agent: ${n} log line(s) dropped here: the agent's log spool was full]`, toDisk);
  }

  private add(line: string, toDisk: boolean): void {
    this.queue.push(line);
    this.pendingBytes += line.length + LINE_OVERHEAD;
    if (toDisk) this.spool?.append(line);
  }

  /** Ends a backoff wait now, so the next attempt is immediate (on shutdown, or when the server is back). */
  retryNow(): void {
    this.backoffWaiter.retryNow();
  }

  private kick(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private isDrained(): boolean {
    return this.gaveUp || (this.pending === 0 && this.droppedSinceMarker === 0);
  }

  private takeBatch(): { text: string; count: number; chars: number } {
    const lines: string[] = [];
    let bytes = 0;
    let chars = 0;
    for (let i = this.head; i < this.queue.length; i++) {
      const line = this.queue[i] as string;
      const size = Buffer.byteLength(line) + 1;
      if (lines.length > 0 && bytes + size > this.maxBatch) break;
      lines.push(line);
      bytes += size;
      chars += line.length + LINE_OVERHEAD;
    }
    return { text: lines.join("\n"), count: lines.length, chars };
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    let attempt = 0;
    while (!signal.aborted) {
      if (this.pending === 0) this.addDropMarker(true);
      if (this.pending === 0) {
        for (const done of this.drainWaiters.splice(0)) done();
        if (this.closed) break;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        continue;
      }
      const batch = this.takeBatch();
      try {
        await this.opts.transport.postLog(this.testId, batch.text, { retries: 0, signal });
      } catch (err) {
        if (signal.aborted) return;
        const verdict = classifyDeliveryError(err);
        if (verdict === "retry") {
          this.logger.debug(`logs of test ${this.testId} not delivered yet: ${errorText(err)}`);
          await this.backoffWaiter.wait(backoffDelay(attempt++, this.opts.backoff ?? { baseMs: 500, maxMs: 60_000 }, this.opts.random), signal);
          continue;
        }
        if (verdict === "stopped") return;
        this.giveUp(err);
        break;
      }
      attempt = 0;
      this.advance(batch.count, batch.chars);
    }
    if (!signal.aborted) await this.spool?.remove();
  }

  private advance(count: number, chars: number): void {
    this.head += count;
    this.deliveredLines += count;
    this.pendingBytes -= chars;
    this.deliveredRecords += count;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.spool?.savePosition(this.deliveredRecords);
  }

  private giveUp(err: unknown): void {
    this.gaveUp = true;
    const left = this.pending;
    this.queue = [];
    this.head = 0;
    this.pendingBytes = 0;
    this.logger.debug(`logs of test ${this.testId}: giving up with ${left} line(s) undelivered: ${errorText(err)}`);
    this.opts.onGiveUp?.(this.testId, err);
    for (const done of this.drainWaiters.splice(0)) done();
  }

  /** Reads what a previous run left in `<spoolDir>/<testId>.log` beyond its delivered position. */
  static readSpool(spoolDir: string, testId: string): Promise<{ lines: string[]; deliveredRecords: number }> {
    return LogSpool.read(spoolDir, testId);
  }
}
