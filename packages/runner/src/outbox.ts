import { readdir, rename, rm } from "node:fs/promises";
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
import { ensureRealDir, isNotRegular, readRegularFile, writeAtomic } from "./state-files.js";

/** The part of KittServerClient the outbox uses. */
export interface OutboxTransport {
  postStatus(testId: string, update: StatusUpdate, opts?: CallOptions): Promise<void>;
  reportResult(agentId: string, report: ResultReport, opts?: CallOptions): Promise<void>;
}

export type OutboxMessage =
  | { kind: "status"; testId: string; update: StatusUpdate }
  | { kind: "result"; testId: string; report: ResultReport };

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
  /** Awaited before an entry is sent: the reporter uses it to send a job's log lines first. */
  beforeSend?: (entry: OutboxEntry) => Promise<void>;
  backoff?: BackoffPolicy;
  /** While the disk refuses writes, how often the outbox tries again (default 5 s). */
  diskRetryMs?: number;
  logger?: Logger;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

const SEQ_DIGITS = 12;
const ENTRY = /^(\d{12})\.json$/;
/** Far above any real entry (metrics.json is capped at 8 MiB): a bound on what start-up reads. */
const MAX_ENTRY_BYTES = 64 * 1024 * 1024;
/** Written and removed to see whether a full disk has room again; `.tmp-` so a crash leftover is swept at open. */
const PROBE = ".tmp-probe";

/** Where an entry is: memory only, being written, on disk, or delivered/set aside. */
type Stored = "memory" | "writing" | "disk" | "gone";
interface Held extends OutboxEntry {
  stored: Stored;
}

function isMessage(value: unknown): value is OutboxMessage {
  if (value === null || typeof value !== "object") return false;
  const v = value as Record<string, unknown>;
  if (typeof v.testId !== "string") return false;
  if (v.kind === "status") return typeof v.update === "object" && v.update !== null;
  if (v.kind === "result") return typeof v.report === "object" && v.report !== null;
  return false;
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
  private readonly entries: Held[] = [];
  private nextSeq = 1;
  private writing: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  private readonly backoffWaiter: BackoffWaiter;
  private authWarned = false;
  private agentWaitWarned = false;
  private emptyWaiters: (() => void)[] = [];
  private diskError: string | undefined;
  private diskTimer: NodeJS.Timeout | undefined;

  private constructor(options: OutboxOptions) {
    this.opts = options;
    this.logger = options.logger ?? silentLogger;
    this.backoffWaiter = new BackoffWaiter(options.sleep);
    this.backoff = options.backoff ?? { baseMs: 1000, maxMs: 5 * 60_000 };
  }

  /** Opens (creating) the outbox and loads what a previous run left undelivered. Refuses an outbox or `rejected/` that is a symbolic link. */
  static async open(options: OutboxOptions): Promise<Outbox> {
    const outbox = new Outbox(options);
    const { dir } = options;
    await ensureRealDir(dir);
    await ensureRealDir(join(dir, "rejected"));
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      if (name.startsWith(".tmp-")) {
        // A write interrupted before its rename: never acknowledged as written.
        await rm(path, { force: true });
        continue;
      }
      const match = ENTRY.exec(name);
      if (match === null) continue;
      const seq = Number(match[1]);
      outbox.nextSeq = Math.max(outbox.nextSeq, seq + 1);
      try {
        const message = JSON.parse(await readRegularFile(path, MAX_ENTRY_BYTES)) as unknown;
        if (!isMessage(message)) throw new Error("not an outbox message");
        outbox.entries.push({ seq, message, stored: "disk" });
      } catch (err) {
        if (isNotRegular(err)) {
          // Not ours: a link (never followed) or a FIFO someone planted. It goes, its target stays untouched.
          outbox.logger.warn(`outbox: ${errorText(err)}; removed`);
          await rm(path, { force: true }).catch(() => {});
          continue;
        }
        outbox.logger.warn(`outbox entry ${name} is unreadable (${errorText(err)}): moved to rejected/`);
        await rename(path, join(dir, "rejected", name)).catch(() => {});
      }
    }
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
    return { pending: this.pending, in_memory: this.inMemory, disk_error: this.diskError ?? null };
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
    const entry: Held = { seq: this.nextSeq++, message, stored: "memory" };
    const write = this.writing.then(async () => {
      // Older messages the disk refused go first, so what is on disk is always a prefix in order.
      if (await this.persistBacklog()) await this.persist(entry);
      this.entries.push(entry);
      this.kick();
    });
    // One failed step must not stop the ones after it.
    this.writing = write.catch((err: unknown) => this.logger.error(`outbox: cannot queue a ${message.kind} for test ${message.testId}: ${errorText(err)}`));
    return write;
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
    await this.persistBacklog();
    const lost = this.inMemory;
    if (lost > 0) this.logger.error(`outbox: ${lost} report(s) could neither be written to ${this.opts.dir} (${this.diskError ?? "?"}) nor delivered before the agent stopped: they are lost`);
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

  /** Writes the entries only memory holds, oldest first; false at the first the disk refuses. */
  private async persistBacklog(): Promise<boolean> {
    for (const entry of this.entries) {
      if (entry.stored === "memory" && !(await this.persist(entry))) return false;
    }
    return true;
  }

  private async persist(entry: Held): Promise<boolean> {
    entry.stored = "writing";
    try {
      await writeAtomic(this.opts.dir, fileName(entry.seq), JSON.stringify(entry.message));
    } catch (err) {
      if (entry.stored === "writing") entry.stored = "memory";
      this.diskFailed(err);
      return false;
    }
    // Delivered while it was being written: the file is not needed any more.
    // (settle() may have run meanwhile: TypeScript cannot see that.)
    if ((entry.stored as Stored) === "gone") await rm(join(this.opts.dir, fileName(entry.seq)), { force: true }).catch(() => {});
    else entry.stored = "disk";
    this.diskWorks();
    return true;
  }

  private diskFailed(err: unknown): void {
    const text = errorText(err);
    if (this.diskError === undefined) {
      this.logger.error(
        `outbox: cannot write to ${this.opts.dir} (${text}): status updates and results are kept in memory and delivered directly; writing is retried every ${this.diskRetryMs / 1000} s`,
      );
    } else this.logger.debug(`outbox: ${this.opts.dir} still refuses writes: ${text}`);
    this.diskError = text;
    this.scheduleDiskRetry();
  }

  private diskWorks(): void {
    if (this.diskError === undefined) return;
    this.diskError = undefined;
    this.logger.info(`outbox: ${this.opts.dir} takes writes again`);
  }

  private get diskRetryMs(): number {
    return this.opts.diskRetryMs ?? 5000;
  }

  private scheduleDiskRetry(): void {
    if (this.diskTimer !== undefined || this.stopping.signal.aborted) return;
    this.diskTimer = setTimeout(() => {
      this.diskTimer = undefined;
      this.writing = this.writing.then(() => this.retryDisk());
    }, this.diskRetryMs);
    this.diskTimer.unref();
  }

  /** On the timer: write the backlog, or (nothing waiting) probe whether the disk has room again. */
  private async retryDisk(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    if (this.inMemory > 0) {
      await this.persistBacklog();
      return;
    }
    if (this.diskError === undefined) return;
    try {
      await writeAtomic(this.opts.dir, PROBE, "x".repeat(4096), false);
      await rm(join(this.opts.dir, PROBE), { force: true });
      this.diskWorks();
    } catch (err) {
      this.diskFailed(err);
    }
  }

  private async run(): Promise<void> {
    let attempt = 0;
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      const entry = this.entries[0];
      if (entry === undefined) {
        for (const done of this.emptyWaiters.splice(0)) done();
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

  /** One try: "done" (delivered or set aside), "retry" or "stopped". */
  private async attempt(entry: Held, signal: AbortSignal): Promise<"done" | "retry" | "stopped"> {
    const { message } = entry;
    try {
      await this.opts.beforeSend?.(entry);
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
      await this.settle(entry, true);
      return "done";
    }
    await this.settle(entry, false);
    return "done";
  }

  /** Delivered (or refused for good): the file goes (to `rejected/` when refused). */
  private async settle(entry: Held, rejected: boolean): Promise<void> {
    const was = entry.stored;
    entry.stored = "gone";
    const name = fileName(entry.seq);
    const file = join(this.opts.dir, name);
    const rejectedDir = join(this.opts.dir, "rejected");
    if (was === "disk") {
      await (rejected ? rename(file, join(rejectedDir, name)) : rm(file, { force: true })).catch(() => {});
    } else if (rejected) {
      // Only memory held it: a copy for inspection if the disk takes it (a rename never follows a link planted there).
      await writeAtomic(rejectedDir, name, JSON.stringify(entry.message), false).catch(() => {});
    }
  }
}

function fileName(seq: number): string {
  return `${String(seq).padStart(SEQ_DIGITS, "0")}.json`;
}
