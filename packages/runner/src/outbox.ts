import { join } from "node:path";

import {
  backoffDelay,
  silentLogger,
  type BackoffPolicy,
  type CallOptions,
  type Logger,
  type ResultReport,
  type StatusUpdate,
} from "@kitt/protocol";

import { errorText } from "./job.js";
import { classifyDeliveryError } from "./report-errors.js";
import { BackoffWaiter, waitOrTimeout } from "./backoff-waiter.js";
import { OutboxFiles, type HeldEntry } from "./outbox-files.js";

/** The part of KittServerClient the outbox uses. */
export interface OutboxTransport {
  postStatus(testId: string, update: StatusUpdate, opts?: CallOptions): Promise<void>;
  reportResult(agentId: string, report: ResultReport, opts?: CallOptions): Promise<void>;
  /** The server's row of a test: asked before resending what a previous run may have delivered. */
  getTest?(testId: string, opts?: CallOptions): Promise<{ status: string; result_id?: string | number | null }>;
}

/**
 * `job`: the job the message belongs to (its log stream is drained first);
 * `key`: a name for crash recovery (`<command id>:result`); both stay local.
 */
export type OutboxMessage =
  | { kind: "status"; testId: string; update: StatusUpdate; job?: string; key?: string }
  | { kind: "result"; testId: string; report: ResultReport; job?: string; key?: string };

export interface OutboxEntry {
  /** Delivery order; also the file name. */
  seq: number;
  message: OutboxMessage;
}

/** What `/api/status` shows of the outbox. */
export interface OutboxState {
  /** Messages the server has not acknowledged yet. */
  pending: number;
  /** Of those, the ones the disk refused: only in memory (lost if the agent stops before they are delivered or written). */
  in_memory: number;
  /** The last write error while the outbox's disk refuses writes (e.g. `ENOSPC: no space left on device`); null once a write succeeds. */
  disk_error: string | null;
}

export interface OutboxOptions {
  /** Entries live here as `<seq>.json`; refused ones move to `rejected/`. */
  dir: string;
  transport: OutboxTransport;
  /** The agent id results are posted under; undefined until registered (results then wait). */
  agentId: () => string | undefined;
  /** Awaited before an entry is sent: the reporter uses it to send a job's log lines first. Must end when `signal` aborts (the outbox stops). */
  beforeSend?: (entry: OutboxEntry, signal: AbortSignal) => Promise<void>;
  backoff?: BackoffPolicy;
  /** While the disk refuses writes, how often the outbox tries again (default 5 s). */
  diskRetryMs?: number;
  logger?: Logger;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

/**
 * Status updates and results waiting for the server, kept on disk. Each
 * message is written (atomically: temp file, fsync, rename) before the
 * first attempt, and deleted only once the server acknowledged it, so it
 * survives server outages and agent restarts. Delivery is strictly in
 * order, one at a time, retried with capped backoff. A message the server
 * refuses for good (400, 404) or with 401/403 is moved to `rejected/` for
 * inspection instead of being retried in a loop; 401/403 is logged once.
 *
 * When the disk refuses a write (full, read-only, quota), the message is
 * kept in memory, delivered in its turn all the same, and written as soon
 * as the disk takes it again (tried every `diskRetryMs`, and before each
 * new message, oldest first, so what is on disk stays in order). `state()`
 * says how many wait in memory only and why.
 */
export class Outbox {
  private readonly opts: OutboxOptions;
  private readonly logger: Logger;
  private readonly backoff: BackoffPolicy;
  private readonly files: OutboxFiles;
  private entries: HeldEntry[] = [];
  private nextSeq = 1;
  private writing: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  private readonly backoffWaiter: BackoffWaiter;
  private authWarned = false;
  private agentWaitWarned = false;
  private emptyWaiters: (() => void)[] = [];
  private diskTimer: NodeJS.Timeout | undefined;
  /** Keys of messages that must not be sent yet (their job is not marked done in the journal). */
  private readonly held = new Set<string>();

  private constructor(options: OutboxOptions) {
    this.opts = options;
    this.logger = options.logger ?? silentLogger;
    this.backoffWaiter = new BackoffWaiter(options.sleep);
    this.backoff = options.backoff ?? { baseMs: 1000, maxMs: 5 * 60_000 };
    this.files = new OutboxFiles(options.dir, this.logger, options.diskRetryMs ?? 5000, () => this.scheduleDiskRetry());
  }

  /** Opens (creating) the outbox and loads what a previous run left undelivered. Refuses an outbox or `rejected/` that is a symbolic link. */
  static async open(options: OutboxOptions): Promise<Outbox> {
    const outbox = new Outbox(options);
    const { entries, nextSeq } = await outbox.files.load();
    outbox.entries = entries;
    outbox.nextSeq = nextSeq;
    return outbox;
  }

  get pending(): number {
    return this.entries.length;
  }

  /** Pending messages the disk has not taken (yet). */
  get inMemory(): number {
    return this.entries.filter((e) => e.stored === "memory" || e.stored === "writing").length;
  }

  state(): OutboxState {
    return { pending: this.pending, in_memory: this.inMemory, disk_error: this.files.diskError ?? null };
  }

  /** A copy of what waits, oldest first. */
  list(): OutboxEntry[] {
    return this.entries.map((e) => ({ seq: e.seq, message: e.message }));
  }

  /**
   * Stores a message; resolves once it is on disk, or, when the disk refuses
   * it, kept in memory (see `state()`). Order of calls = order of delivery.
   */
  add(message: OutboxMessage): Promise<void> {
    const entry: HeldEntry = { seq: this.nextSeq++, message, stored: "memory" };
    const write = this.writing.then(async () => {
      // Older messages the disk refused go first, so what is on disk is always a prefix in order.
      if (await this.files.persistBacklog(this.entries)) await this.files.persist(entry);
      this.entries.push(entry);
      this.kick();
    });
    // One failed step must not stop the ones after it.
    this.writing = write.catch((err: unknown) => this.logger.error(`outbox: cannot queue a ${message.kind} for test ${message.testId}: ${errorText(err)}`));
    return write;
  }

  /**
   * Messages with these keys wait, even at the head of the line (delivery
   * keeps its order), until released. For the job journal: an outcome must
   * not reach the server before the journal says it was handed over, or a
   * crash in between would have it reported twice.
   */
  hold(keys: readonly string[]): void {
    for (const key of keys) this.held.add(key);
  }

  release(keys: readonly string[]): void {
    for (const key of keys) this.held.delete(key);
    this.kick();
  }

  /** Whether a message with this key waits to be delivered. */
  hasPending(key: string): boolean {
    return this.entries.some((e) => e.message.key === key);
  }

  /** Starts delivering in the background. */
  start(): void {
    this.loop ??= this.run();
  }

  /** Resolves true once everything was delivered, false when `timeoutMs` passes first. */
  async flush(timeoutMs: number): Promise<boolean> {
    await this.writing;
    if (this.entries.length === 0) return true;
    return waitOrTimeout((done) => this.emptyWaiters.push(done), timeoutMs);
  }

  /** Stops delivering (what is left stays on disk for the next start; what only memory holds gets a last write attempt). */
  async stop(): Promise<void> {
    this.stopping.abort(new Error("outbox stopped"));
    clearTimeout(this.diskTimer);
    this.kick();
    await this.loop;
    await this.writing;
    await this.files.persistBacklog(this.entries);
    const lost = this.inMemory;
    if (lost > 0) this.logger.error(`outbox: ${lost} report(s) could neither be written to ${this.opts.dir} (${this.files.diskError ?? "?"}) nor delivered before the agent stopped: they are lost`);
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

  private scheduleDiskRetry(): void {
    if (this.diskTimer !== undefined || this.stopping.signal.aborted) return;
    this.diskTimer = setTimeout(() => {
      this.diskTimer = undefined;
      this.writing = this.writing.then(() => this.retryDisk());
    }, this.opts.diskRetryMs ?? 5000);
    this.diskTimer.unref();
  }

  /** On the timer: write the backlog, or (nothing waiting) probe whether the disk has room again. */
  private async retryDisk(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    if (this.inMemory > 0) await this.files.persistBacklog(this.entries);
    else if (this.files.diskError !== undefined) await this.files.probe();
  }

  private async run(): Promise<void> {
    let attempt = 0;
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      const entry = this.entries[0];
      if (entry === undefined || (entry.message.key !== undefined && this.held.has(entry.message.key))) {
        if (entry === undefined) for (const done of this.emptyWaiters.splice(0)) done();
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        continue;
      }
      const outcome = await this.attempt(entry, signal);
      if (outcome === "retry") {
        const delay = backoffDelay(attempt++, this.backoff, this.opts.random);
        await this.backoffWaiter.wait(delay, signal);
        continue;
      }
      if (outcome === "stopped") return;
      attempt = 0;
      this.entries.shift();
    }
  }

  /**
   * For a message a previous run left: does the server's row show it
   * arrived (the run died between the server's answer and removing the
   * file)? Delivery is in order, so a terminal status on the row also means
   * the result before it arrived. Unknown (no such route, an error): false,
   * the message is sent (at least once).
   */
  private async deliveredBefore(entry: HeldEntry, signal: AbortSignal): Promise<boolean> {
    entry.resumed = false;
    const getTest = this.opts.transport.getTest?.bind(this.opts.transport);
    if (getTest === undefined) return false;
    const { message } = entry;
    let row: { status: string; result_id?: string | number | null };
    try {
      row = await getTest(message.testId, { retries: 0, signal });
    } catch {
      return false;
    }
    const ended = row.status === "completed" || row.status === "failed";
    const hasResult = row.result_id !== null && row.result_id !== undefined && row.result_id !== "";
    if (message.kind === "result") return ended || (message.report.result_data !== undefined && hasResult);
    if (message.update.status === "running") return row.status === "running" || ended;
    return row.status === message.update.status;
  }

  /** One try: "done" (delivered or set aside), "retry" or "stopped". */
  private async attempt(entry: HeldEntry, signal: AbortSignal): Promise<"done" | "retry" | "stopped"> {
    const { message } = entry;
    if (entry.resumed === true && (await this.deliveredBefore(entry, signal))) {
      this.logger.info(`outbox: the ${message.kind} for test ${message.testId} reached the server before the restart; not sent again`);
      await this.files.settle(entry, false);
      return "done";
    }
    try {
      await this.opts.beforeSend?.(entry, signal);
      if (message.kind === "status") {
        await this.opts.transport.postStatus(message.testId, message.update, { retries: 0, signal });
      } else {
        const agentId = this.opts.agentId();
        if (agentId === undefined) {
          if (!this.agentWaitWarned) this.logger.info("outbox: results wait until the agent is registered");
          this.agentWaitWarned = true;
          return "retry";
        }
        await this.opts.transport.reportResult(agentId, message.report, { retries: 0, signal });
      }
    } catch (err) {
      if (signal.aborted) return "stopped";
      const verdict = classifyDeliveryError(err);
      if (verdict === "retry") {
        this.logger.debug(`outbox: ${message.kind} for test ${message.testId} not delivered yet: ${errorText(err)}`);
        return "retry";
      }
      if (verdict === "stopped") return "stopped";
      if (verdict === "auth") {
        const text = `outbox: the server refused the agent's token for ${message.kind} updates (${errorText(err)}); kept in ${join(this.opts.dir, "rejected")} for inspection`;
        if (this.authWarned) this.logger.debug(text);
        else this.logger.error(`${text}. Is the server running with an admin token? Later refusals are logged at debug level.`);
        this.authWarned = true;
      } else {
        this.logger.warn(`outbox: the server refused the ${message.kind} for test ${message.testId} (${errorText(err)}); kept in rejected/`);
      }
      await this.files.settle(entry, true);
      return "done";
    }
    await this.files.settle(entry, false);
    return "done";
  }
}
