import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
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

export interface OutboxOptions {
  /** Entries live here as `<seq>.json`; refused ones move to `rejected/`. */
  dir: string;
  transport: OutboxTransport;
  /** The agent id results are posted under; undefined until registered (results then wait). */
  agentId: () => string | undefined;
  /** Awaited before an entry is sent: the reporter uses it to send a job's log lines first. */
  beforeSend?: (entry: OutboxEntry) => Promise<void>;
  backoff?: BackoffPolicy;
  logger?: Logger;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

const SEQ_DIGITS = 12;
const ENTRY = /^(\d{12})\.json$/;

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
 */
export class Outbox {
  private readonly opts: OutboxOptions;
  private readonly logger: Logger;
  private readonly backoff: BackoffPolicy;
  private readonly entries: OutboxEntry[] = [];
  private nextSeq = 1;
  private writing: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  private readonly backoffWaiter: BackoffWaiter;
  private authWarned = false;
  private agentWaitWarned = false;
  private emptyWaiters: (() => void)[] = [];

  private constructor(options: OutboxOptions) {
    this.opts = options;
    this.logger = options.logger ?? silentLogger;
    this.backoffWaiter = new BackoffWaiter(options.sleep);
    this.backoff = options.backoff ?? { baseMs: 1000, maxMs: 5 * 60_000 };
  }

  /** Opens (creating) the outbox and loads what a previous run left undelivered. */
  static async open(options: OutboxOptions): Promise<Outbox> {
    const outbox = new Outbox(options);
    await mkdir(join(options.dir, "rejected"), { recursive: true, mode: 0o700 });
    const names = (await readdir(options.dir)).sort();
    for (const name of names) {
      if (name.startsWith(".tmp-")) {
        // A write interrupted before its rename: never acknowledged as written.
        await rm(join(options.dir, name), { force: true });
        continue;
      }
      const match = ENTRY.exec(name);
      if (match === null) continue;
      const seq = Number(match[1]);
      outbox.nextSeq = Math.max(outbox.nextSeq, seq + 1);
      try {
        const message = JSON.parse(await readFile(join(options.dir, name), "utf8")) as unknown;
        if (!isMessage(message)) throw new Error("not an outbox message");
        outbox.entries.push({ seq, message });
      } catch (err) {
        outbox.logger.warn(`outbox entry ${name} is unreadable (${errorText(err)}): moved to rejected/`);
        await rename(join(options.dir, name), join(options.dir, "rejected", name)).catch(() => {});
      }
    }
    return outbox;
  }

  get pending(): number {
    return this.entries.length;
  }

  /** A copy of what waits, oldest first. */
  list(): OutboxEntry[] {
    return this.entries.map((e) => ({ seq: e.seq, message: e.message }));
  }

  /** Stores a message durably; resolves once it is on disk. Order of calls = order of delivery. */
  add(message: OutboxMessage): Promise<void> {
    const entry: OutboxEntry = { seq: this.nextSeq++, message };
    const write = this.writing.then(async () => {
      await writeAtomic(this.opts.dir, fileName(entry.seq), JSON.stringify(message));
      this.entries.push(entry);
      this.kick();
    });
    // One failed write must not stop the ones after it.
    this.writing = write.catch((err: unknown) => this.logger.error(`outbox: cannot store a ${message.kind} for test ${message.testId}: ${errorText(err)}`));
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

  /** Stops delivering (what is left stays on disk for the next start). */
  async stop(): Promise<void> {
    this.stopping.abort(new Error("outbox stopped"));
    this.kick();
    await this.loop;
    await this.writing;
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
  private async attempt(entry: OutboxEntry, signal: AbortSignal): Promise<"done" | "retry" | "stopped"> {
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
      await rename(join(this.opts.dir, fileName(entry.seq)), join(this.opts.dir, "rejected", fileName(entry.seq))).catch(() => {});
      return "done";
    }
    await rm(join(this.opts.dir, fileName(entry.seq)), { force: true });
    return "done";
  }
}

function fileName(seq: number): string {
  return `${String(seq).padStart(SEQ_DIGITS, "0")}.json`;
}

/** Temp file, fsync (unless `sync` is false), rename: after a crash the file is either whole or absent. */
export async function writeAtomic(dir: string, name: string, text: string, sync = true): Promise<void> {
  const tmp = join(dir, `.tmp-${name}-${randomBytes(4).toString("hex")}`);
  const handle = await open(tmp, "w", 0o600);
  try {
    await handle.writeFile(text);
    if (sync) await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, join(dir, name));
}
