import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";

import { isSafeId, ServerError, silentLogger, type BackoffPolicy, type Logger, type ResultReport, type StatusUpdate } from "@kitt/protocol";

import { errorText } from "./job.js";
import type { Reporter, ReportRef } from "./job-types.js";
import { LogShipper, type LogTransport } from "./log-shipper.js";
import { Outbox, type OutboxEntry, type OutboxState, type OutboxTransport } from "./outbox.js";
import { ensureRealDir, isNotRegular } from "./state-files.js";

export interface ServerReporterOptions {
  /** `outbox/` and `log-spool/` are kept here (the daemon uses `~/.kitt/`). */
  stateDir: string;
  /** A KittServerClient, or anything with its three methods. */
  transport: OutboxTransport & LogTransport;
  agentId: () => string | undefined;
  logger?: Logger;
  backoff?: BackoffPolicy;
  maxBatchBytes?: number;
  maxPendingBytes?: number;
  /**
   * How long a result or final status waits for the job's log lines before
   * going anyway (default 10 min). Long on purpose: while the server is down
   * neither can be delivered, so waiting costs nothing and keeps the outcome
   * after the output; a log endpoint that refuses for good (401/403, 4xx)
   * makes the shipper give up, which ends the wait at once.
   */
  logDrainTimeoutMs?: number;
  /** While the disk refuses outbox writes or spool appends, how often they are tried again (default 5 s). */
  diskRetryMs?: number;
  /**
   * Open without delivering status updates and results yet: the caller
   * (JobRunner.recoverInterrupted) calls startDelivery() once crash recovery
   * has looked at what waits. Default: deliver at once.
   */
  deferDelivery?: boolean;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

/**
 * The Reporter the daemon gives the JobRunner: log lines go through one
 * LogShipper per job, status updates and results through the durable
 * Outbox. A job's result and final status are sent after its log lines
 * (bounded wait), so the server sees the outcome last. On open it resumes
 * what a previous run left: undelivered outbox entries and spooled lines.
 */
export class ServerReporter implements Reporter {
  readonly outbox: Outbox;
  private readonly opts: ServerReporterOptions;
  private readonly logger: Logger;
  private readonly shippers = new Map<string, LogShipper>();
  private readonly spoolDir: string;
  private authLogged = false;
  /** Spool files whose disk refuses appends now: test id -> error. */
  private readonly spoolErrors = new Map<string, string>();

  private constructor(opts: ServerReporterOptions, outbox: Outbox) {
    this.opts = opts;
    this.logger = opts.logger ?? silentLogger;
    this.outbox = outbox;
    this.spoolDir = join(opts.stateDir, "log-spool");
  }

  static async open(opts: ServerReporterOptions): Promise<ServerReporter> {
    // The outbox needs the reporter's hook, the reporter needs the outbox.
    const holder: { reporter?: ServerReporter } = {};
    const outbox = await Outbox.open({
      dir: join(opts.stateDir, "outbox"),
      transport: opts.transport,
      agentId: opts.agentId,
      beforeSend: (entry, signal) => holder.reporter?.beforeSend(entry, signal) ?? Promise.resolve(),
      backoff: opts.backoff,
      diskRetryMs: opts.diskRetryMs,
      logger: opts.logger,
      sleep: opts.sleep,
      random: opts.random,
    });
    const reporter = new ServerReporter(opts, outbox);
    holder.reporter = reporter;
    await ensureRealDir(reporter.spoolDir);
    await reporter.recoverSpools();
    if (opts.deferDelivery !== true) outbox.start();
    return reporter;
  }

  /** Starts delivering status updates and results (after crash recovery, with `deferDelivery`). */
  startDelivery(): void {
    this.outbox.start();
  }

  /**
   * A status update. A terminal one closes the log stream of `ref.job` (the
   * job's command id), else of the test: a report about another command of
   * the same test never cuts a running job's stream.
   */
  status(testId: string, update: StatusUpdate, ref: ReportRef = {}): Promise<void> {
    const done = this.outbox.add({ kind: "status", testId, update, ...refFields(ref) });
    if (update.status !== "running") this.closeShipper(streamKey(testId, ref.job));
    return done;
  }

  result(testId: string, report: ResultReport, ref: ReportRef = {}): Promise<void> {
    return this.outbox.add({ kind: "result", testId, report, ...refFields(ref) });
  }

  hold(keys: readonly string[]): void {
    this.outbox.hold(keys);
  }

  release(keys: readonly string[]): void {
    this.outbox.release(keys);
  }

  hasPending(key: string): boolean {
    return this.outbox.hasPending(key);
  }

  /** A log line of `job` (its command id; each job has its own ordered stream), else of the test. */
  log(testId: string, line: string, job?: string): void {
    const key = streamKey(testId, job);
    let shipper = this.shippers.get(key);
    if (shipper === undefined) {
      // The ids name the spool file: the runner only logs for validated ids, but check.
      if (!isSafeId(testId) || (job !== undefined && !isSafeId(job))) return;
      shipper = this.makeShipper(testId, key);
      this.shippers.set(key, shipper);
    }
    shipper.push(line);
  }

  /** Lines not yet delivered, over all jobs. */
  get pendingLines(): number {
    let n = 0;
    for (const s of this.shippers.values()) n += s.pending;
    return n;
  }

  /**
   * The outbox for `/api/status`: messages pending, those only in memory
   * because the disk refused them, and the disk's error (the outbox's, else
   * a log spool's) while writes fail.
   */
  outboxState(): OutboxState {
    const state = this.outbox.state();
    const spoolError = this.spoolErrors.values().next().value;
    return { ...state, disk_error: state.disk_error ?? (spoolError === undefined ? null : `log spool: ${spoolError}`) };
  }

  /** Waits (bounded) until every line and outbox entry is delivered: for a clean shutdown. */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    this.retryNow();
    const logs = await Promise.all([...this.shippers.values()].map((s) => s.drained(Math.max(0, deadline - Date.now()))));
    const outbox = await this.outbox.flush(Math.max(0, deadline - Date.now()));
    return logs.every(Boolean) && outbox;
  }

  /** Ends every backoff wait now (e.g. when the heartbeat sees the server back). */
  retryNow(): void {
    for (const s of this.shippers.values()) s.retryNow();
    this.outbox.retryNow();
  }

  /** Stops delivering; what is undelivered stays on disk for the next start. */
  async stop(): Promise<void> {
    await Promise.all([...this.shippers.values()].map((s) => s.stop()));
    await this.outbox.stop();
  }

  private makeShipper(testId: string, spoolName: string, resume?: { lines: string[]; deliveredRecords: number }): LogShipper {
    return new LogShipper(
      {
        testId,
        spoolName,
        transport: this.opts.transport,
        spoolDir: this.spoolDir,
        maxBatchBytes: this.opts.maxBatchBytes,
        maxPendingBytes: this.opts.maxPendingBytes,
        backoff: this.opts.backoff,
        logger: this.logger,
        sleep: this.opts.sleep,
        random: this.opts.random,
        onGiveUp: (id, err) => this.onGiveUp(id, err),
        spoolRetryMs: this.opts.diskRetryMs,
        onSpoolDiskError: (id, error) => {
          if (error === undefined) this.spoolErrors.delete(id);
          else this.spoolErrors.set(id, error);
        },
      },
      resume,
    );
  }

  private closeShipper(key: string): void {
    const shipper = this.shippers.get(key);
    if (shipper === undefined) return;
    void shipper.close().then(() => {
      if (this.shippers.get(key) === shipper) this.shippers.delete(key);
    });
  }

  /** A job's result and final status wait (bounded, and never past stop()) for its log lines. */
  private async beforeSend(entry: OutboxEntry, signal: AbortSignal): Promise<void> {
    const { message } = entry;
    const terminal = message.kind === "result" || message.update.status !== "running";
    const shipper = terminal ? this.shippers.get(streamKey(message.testId, message.job)) : undefined;
    if (shipper === undefined || signal.aborted) return;
    let onAbort: (() => void) | undefined;
    const stopped = new Promise<boolean>((resolve) => {
      onAbort = () => resolve(false);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    const ok = await Promise.race([shipper.drained(this.opts.logDrainTimeoutMs ?? 600_000), stopped]);
    if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
    if (!ok && !signal.aborted) this.logger.warn(`test ${message.testId}: sending its ${message.kind} before all its log lines (${shipper.pending} still waiting)`);
  }

  private onGiveUp(testId: string, err: unknown): void {
    const auth = err instanceof ServerError && (err.status === 401 || err.status === 403);
    if (auth && this.authLogged) return;
    if (auth) {
      this.authLogged = true;
      this.logger.error(
        `the server refuses the agent's token for test logs (${errorText(err)}); log lines are not delivered. Is the server running with an admin token?`,
      );
      return;
    }
    this.logger.warn(`test ${testId}: the server refused its log lines (${errorText(err)}); the rest of them are dropped`);
  }

  private async recoverSpools(): Promise<void> {
    for (const name of await readdir(this.spoolDir)) {
      if (!name.endsWith(".log")) continue;
      // `<test id>.<command id>.log`, or `<test id>.log` from an earlier version.
      const key = name.slice(0, -".log".length);
      const [testId = "", job] = key.split(".");
      if (!isSafeId(testId) || (job !== undefined && !isSafeId(job)) || key.split(".").length > 2) continue;
      try {
        const resume = await LogShipper.readSpool(this.spoolDir, key);
        this.logger.info(`resuming delivery of ${resume.lines.length} log line(s) of test ${testId}`);
        const shipper = this.makeShipper(testId, key, resume);
        this.shippers.set(key, shipper);
        this.closeShipper(key);
      } catch (err) {
        if (isNotRegular(err)) {
          // A planted link is never followed (its target is not sent): the link goes.
          this.logger.warn(`log spool: ${errorText(err)}; removed`);
          await rm(join(this.spoolDir, name), { force: true }).catch(() => {});
          continue;
        }
        this.logger.warn(`log spool of test ${testId} is unreadable: ${errorText(err)}`);
      }
    }
  }
}

/** The shipper (and spool file) of a job: `<test id>.<command id>`, or the test's alone. */
function streamKey(testId: string, job: string | undefined): string {
  return job === undefined ? testId : `${testId}.${job}`;
}

function refFields(ref: ReportRef): { job?: string; key?: string } {
  return { ...(ref.job !== undefined ? { job: ref.job } : {}), ...(ref.key !== undefined ? { key: ref.key } : {}) };
}
