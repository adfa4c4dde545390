import { rm } from "node:fs/promises";
import { join } from "node:path";

import { isSafeId, silentLogger, type Logger, type ResultReport, type ServerCommand, type StatusUpdate } from "@kitt/protocol";

import { DEFAULT_KILL_GRACE_MS } from "./benchmark-process.js";
import { checkCommand, type JobSpec } from "./command-validation.js";
import { errorText, Job } from "./job.js";
import { JobJournal, type JournalOutcome, type JournalRecord } from "./job-journal.js";
import { killJobProcesses, killLeftoverGroup, readProcStat } from "./process-group.js";
import { stateDiskProblem } from "./state-files.js";
import type { JobInfo, JobOutcome, ModelResolver, Reporter } from "./job-types.js";
import { DEFAULT_RING_LINES } from "./log-stream.js";
import { runCleanupJob } from "./run-cleanup.js";
import { runTestJob, type RunContext } from "./run-test.js";
import { executionPlanner, type PlanExecution } from "./execution-planner.js";
import type { ContainerRuntime } from "@kitt/containers";
import { runContainerJob, STOPPED_BY_REQUEST } from "./run-container.js";
import { runEngineJob, type EngineDrivers } from "./engine-command.js";

export const CANCELLED_BY_USER = "Cancelled by user";
export const AGENT_RESTARTED = "Agent restarted during the job";
/** Benchmarks can run for hours; a day means something hangs. */
export const DEFAULT_BENCHMARK_TIMEOUT_MS = 24 * 60 * 60 * 1000;

export interface JobRunnerOptions {
  resolver: ModelResolver;
  reporter: Reporter;
  /** Output directories of runs are made under `<workDir>/runs`. */
  workDir: string;
  /**
   * Where accepted jobs are journaled (`<stateDir>/jobs/`) until reported, so
   * that recoverInterrupted() can report what a crash left (none: no journal).
   */
  stateDir?: string;
  /** The benchmark CLI: a name looked up on PATH, or a path (default `kitt`). */
  benchmarkCommand?: string;
  /**
   * Where each run_test job runs (see executionPlanner). Default: the host
   * CLI `benchmarkCommand` only.
   */
  planExecution?: PlanExecution;
  /**
   * The container engine, for run_container / stop_container / check_docker
   * (none: those fail with "Docker is not available").
   */
  containers?: {
    runtime: ContainerRuntime | undefined;
    /** `kitt.agent` label of the containers started. */
    agentLabel: string;
    /** Whether a container asking for GPUs gets them. */
    gpusAllowed: () => boolean;
  };
  /** Native engines for install_engine / start_engine / stop_engine (none: those fail, saying so). */
  engines?: EngineDrivers;
  /** Environment of the benchmark, and the PATH it is looked up on (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Jobs run at the same time (default 1: GPUs are shared). */
  maxConcurrent?: number;
  /** Jobs that may wait; one more is refused and reported failed (default 16). */
  maxQueued?: number;
  /** SIGTERM -> SIGKILL delay on cancel (default 10 s). */
  killGraceMs?: number;
  /** A benchmark running longer is stopped and failed (default 24 h). */
  benchmarkTimeoutMs?: number;
  /** Read at the end of each job, so that a settings change applies to the next one. */
  autoCleanup?: boolean | (() => boolean);
  /** Finished jobs kept for late log readers (default 20). */
  keepFinished?: number;
  ringLines?: number;
  maxLineChars?: number;
  /**
   * Called each time a command has settled (a job ended, or a command was
   * refused and reported) and no job runs or waits in the queue (service
   * containers and queries may still run): the moment to ask the server for
   * the next command. Must not throw (an exception is logged).
   */
  onIdle?: () => void;
  logger?: Logger;
  now?: () => number;
}

/**
 * `persisted` settles once the command's fate is on disk (the job journal):
 * resolves when it is, rejects when the journal cannot be written. Wait for
 * it before acknowledging a command (a 202); the job itself starts only
 * after it has settled.
 */
export type SubmitResult =
  | { accepted: true; job: JobInfo; persisted: Promise<void> }
  | { accepted: false; error: string; reported: boolean; persisted: Promise<void> };

/**
 * Takes commands, runs them one at a time (or `maxConcurrent`) in FIFO
 * order, and reports each exactly once: a command it refuses (invalid,
 * unsupported, queue full) is reported failed right away, never dropped.
 */
export class JobRunner {
  private readonly opts: JobRunnerOptions;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly queue: Job[] = [];
  private readonly running = new Set<Job>();
  /** Jobs that never wait in the queue: service containers and the container queries. */
  private readonly immediate = new Set<Job>();
  /** Every job still known, by command id (unfinished ones and the last finished ones). */
  private readonly jobs = new Map<string, Job>();
  private readonly finishedOrder: string[] = [];
  private readonly ctx: RunContext;
  private accepting = true;
  private readonly journal: JobJournal | undefined;
  private journalLoad: Promise<JournalRecord[]> | undefined;
  /** Per job: its acceptance record's write (the job starts once it settled). */
  private readonly persisted = new Map<Job, Promise<void>>();
  private idleWaiters: (() => void)[] = [];

  constructor(options: JobRunnerOptions) {
    this.opts = options;
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? Date.now;
    const autoCleanup = options.autoCleanup ?? false;
    this.ctx = {
      resolver: options.resolver,
      plan:
        options.planExecution ??
        executionPlanner({ mode: () => "host", benchmarkCommand: options.benchmarkCommand ?? "kitt", env: options.env ?? process.env, agentLabel: "kitt-agent" }),
      env: options.env ?? process.env,
      workDir: options.workDir,
      killGraceMs: options.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
      benchmarkTimeoutMs: options.benchmarkTimeoutMs ?? DEFAULT_BENCHMARK_TIMEOUT_MS,
      maxLineChars: options.maxLineChars,
      autoCleanup: typeof autoCleanup === "function" ? autoCleanup : () => autoCleanup,
      modelInUse: (modelPath, except) => this.modelInUse(modelPath, except),
      onExecution: (job, execution) => this.recordProcess(job, execution.pid),
      logger: this.logger,
    };
    this.journal = options.stateDir === undefined ? undefined : new JobJournal(join(options.stateDir, "jobs"));
  }

  /**
   * Reports the jobs a previous run of the agent accepted but never reported
   * (it was killed): a benchmark process group it left is killed first (each
   * process checked by its start time), then the job is reported with the
   * outcome the journal holds for it, or failed with `reason`; then run
   * output left behind is removed. Call once at start, before submitting
   * anything. Returns the command ids (journal keys) reported.
   */
  async recoverInterrupted(reason: string = AGENT_RESTARTED): Promise<string[]> {
    try {
      return await this.recover(reason);
    } finally {
      // What waits in the outbox goes now that recovery knows it (see ServerReporterOptions.deferDelivery).
      this.opts.reporter.startDelivery?.();
    }
  }

  private async recover(reason: string): Promise<string[]> {
    const leftovers = this.journal === undefined ? [] : await this.loadJournal();
    for (const rec of leftovers) {
      let killed = 0;
      if (rec.processGroup !== undefined) killed += await killLeftoverGroup(rec.processGroup.pgid, rec.processGroup.startTicks).catch(() => 0);
      // Also what the journal had no time to record: every process marked with the job's id.
      if (rec.hasCommandId) killed += await killJobProcesses(rec.commandId).catch(() => 0);
      if (killed > 0) this.logger.warn(`job ${rec.commandId}: killed ${killed} benchmark process(es) left running by the previous agent`);
    }
    // Only now: no benchmark of an earlier run writes there any more.
    await rm(join(this.opts.workDir, "runs"), { recursive: true, force: true });
    // Logs kept for readers of an earlier run's jobs: nobody can ask for those any more.
    if (this.historyDir !== undefined) await rm(this.historyDir, { recursive: true, force: true });
    const reported: string[] = [];
    for (const rec of leftovers) {
      if (this.jobs.has(rec.commandId)) continue;
      const outcome: JournalOutcome = rec.outcome ?? { status: "failed", error: reason };
      if (rec.outcome === undefined) {
        this.logger.warn(`job ${rec.commandId} (test ${rec.testId}) was interrupted by an agent restart: reporting it failed`);
        await this.journalWrite(() => this.journal?.outcome(rec.commandId, outcome));
      } else {
        this.logger.info(`job ${rec.commandId} (test ${rec.testId}) ended before the restart: reporting its outcome (${outcome.status})`);
      }
      await this.deliver({ key: rec.commandId, commandId: rec.hasCommandId ? rec.commandId : undefined, testId: rec.testId }, outcome, { recovering: true });
      reported.push(rec.commandId);
    }
    return reported;
  }

  /**
   * Whether a command id is known here: a job of this run, or one the
   * journal remembers from an earlier one.
   */
  knows(commandId: string): boolean {
    return this.jobs.has(commandId) || this.journal?.has(commandId) === true;
  }

  /**
   * Reports a command the server dispatched to this agent but no run of it
   * ever recorded (lost when an agent died between the server's answer and
   * its journal): failed with `reason`, journaled and delivered like a
   * refusal, once. False when the id is known or unusable.
   */
  reportLost(row: { command_id: string; test_id: string; type?: string }, reason: string): Promise<boolean> {
    if (!isSafeId(row.command_id) || !isSafeId(row.test_id) || this.knows(row.command_id)) return Promise.resolve(false);
    this.logger.warn(`command ${row.command_id} (test ${row.test_id}) was dispatched to this agent but never recorded: reporting it failed`);
    const r = this.refuse({ kind: "unknown", command_id: row.command_id, test_id: row.test_id, type: row.type ?? "run_test", payload: {} }, reason);
    return r.persisted.then(
      () => true,
      () => true,
    );
  }

  /** Loads the journal once (replaying what a previous run left). */
  private loadJournal(): Promise<JournalRecord[]> {
    const journal = this.journal;
    if (journal === undefined) return Promise.resolve([]);
    this.journalLoad ??= journal.load().catch((err: unknown) => {
      this.logger.error(`cannot read the job journal in ${journal.dir}: ${errorText(err)}; jobs are not protected against a crash`);
      return [];
    });
    return this.journalLoad;
  }

  /** fsyncs of the job journal so far (group commit: far fewer than commands). */
  get journalSyncs(): number {
    return this.journal?.syncs ?? 0;
  }

  /** Subscribers reading job logs right now (for the status page). */
  get activeStreams(): number {
    let n = 0;
    for (const job of this.jobs.values()) n += job.logs.subscriberCount;
    return n;
  }

  /** Validates and enqueues a command; a refused one is reported failed (`reported: true`). */
  submit(command: ServerCommand): SubmitResult {
    const checked = checkCommand(command);
    if (!checked.ok) return this.refuse(command, checked.error);
    const { spec } = checked;
    if (this.jobs.has(spec.commandId) || this.journal?.has(spec.commandId) === true) {
      // The first one is (or was) reported by its own job: never twice, also across restarts.
      return { accepted: false, error: `command ${spec.commandId} was already received`, reported: false, persisted: Promise.resolve() };
    }
    if (!this.accepting) return this.refuse(command, "Agent shutting down");
    if (IMMEDIATE_KINDS.has(spec.kind)) return this.startImmediate(spec);
    const waiting = this.queue.length;
    const maxQueued = this.opts.maxQueued ?? 16;
    const mustWait = this.running.size >= (this.opts.maxConcurrent ?? 1);
    if (mustWait && waiting >= maxQueued) return this.refuse(command, `job queue is full (${waiting} jobs waiting)`);
    const job = this.newJob(spec);
    this.jobs.set(spec.commandId, job);
    const persisted = this.journalJob(job);
    this.queue.push(job);
    this.logger.info(`job ${spec.commandId} received: ${describeSpec(spec)}${mustWait ? `, queued behind ${this.running.size + waiting} job(s)` : ""}`);
    if (mustWait) job.log(`Queued behind ${this.running.size + waiting} job(s)`);
    this.pump();
    return { accepted: true, job: job.info(), persisted };
  }

  /**
   * Cancels the job with this command id or test id: a queued one leaves the
   * queue, a running one is stopped (its whole process group). The job ends
   * failed with `reason`. False when no unfinished job matches.
   */
  cancel(id: string, reason: string = CANCELLED_BY_USER): boolean {
    const job = this.findUnfinished(id);
    if (job === undefined) return false;
    const queued = this.queue.indexOf(job);
    if (queued !== -1) {
      this.queue.splice(queued, 1);
      job.cancelReason = reason;
      void this.finish(job, { status: "failed", error: reason }, "queue");
      return true;
    }
    job.log(`Cancel requested: ${reason}`);
    job.requestCancel(reason);
    return true;
  }

  /** A job by command id (unfinished, or one of the last finished). */
  job(commandId: string): Job | undefined {
    return this.jobs.get(commandId);
  }

  list(): JobInfo[] {
    return [...this.jobs.values()].map((j) => j.info());
  }

  get busy(): boolean {
    return this.running.size > 0 || this.queue.length > 0 || this.immediate.size > 0;
  }

  /** Containers running for jobs now (benchmarks in the KITT image and service containers). */
  get activeContainers(): number {
    let n = 0;
    for (const job of [...this.running, ...this.immediate]) if (job.execution?.where.startsWith("container") === true) n++;
    return n;
  }

  /**
   * stop_container: stops the container of a running run_container job
   * (grace, then kill), which then ends `completed`. False when no such
   * container runs.
   */
  stopContainer(runContainerCommandId: string): boolean {
    const job = this.jobs.get(runContainerCommandId);
    if (job === undefined || job.finished || job.spec.kind !== "run_container" || job.containerId === undefined) return false;
    job.log("stop_container: stopping the container");
    job.requestCancel(STOPPED_BY_REQUEST);
    return true;
  }

  /** check_docker: whether the container engine answers (bounded). */
  async checkDocker(timeoutMs = 10_000): Promise<{ available: boolean; error?: string }> {
    const rt = this.opts.containers?.runtime;
    if (rt === undefined) return { available: false, error: "no container engine configured" };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        rt.info(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      return { available: true };
    } catch (err) {
      return { available: false, error: errorText(err) };
    } finally {
      clearTimeout(timer);
    }
  }

  get runningCount(): number {
    return this.running.size;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /** Resolves once no job runs or waits. */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops taking jobs, cancels every unfinished one with `reason`, and waits for them to end. */
  async shutdown(reason = "Agent shutting down"): Promise<void> {
    this.accepting = false;
    for (const job of [...this.queue]) this.cancel(job.commandId, reason);
    for (const job of [...this.running, ...this.immediate]) this.cancel(job.commandId, reason);
    await this.whenIdle();
  }

  /**
   * Last resort, for an agent about to exit without waiting (a second
   * signal): SIGKILL every running benchmark now (a host process group
   * synchronously, a container through the engine, which the returned
   * promise waits for), so no benchmark outlives the agent holding the GPU.
   */
  killAllNow(): Promise<void> {
    const kills: Promise<void>[] = [];
    for (const job of [...this.running, ...this.immediate]) if (job.execution !== undefined) kills.push(job.execution.killNow());
    return Promise.all(kills).then(() => {});
  }

  private findUnfinished(id: string): Job | undefined {
    const direct = this.jobs.get(id);
    if (direct !== undefined && !direct.finished) return direct;
    for (const job of this.jobs.values()) if (!job.finished && job.testId === id) return job;
    return undefined;
  }

  private modelInUse(modelPath: string, except: Job): boolean {
    for (const job of this.jobs.values()) {
      if (job !== except && !job.finished && job.spec.kind === "run_test" && job.spec.modelPath === modelPath) return true;
    }
    return false;
  }

  /**
   * A refused command is recorded in the journal (so a crash cannot lose its
   * report), then reported failed: result and status when it has a command
   * id, the status alone with only a test id. A refusal never touches a job
   * that runs for the same test: it posts no status to that test, only its
   * own result.
   */
  private refuse(command: ServerCommand, error: string): SubmitResult {
    const testId = typeof command.test_id === "string" && isSafeId(command.test_id) ? command.test_id : undefined;
    const commandId = typeof command.command_id === "string" && isSafeId(command.command_id) ? command.command_id : undefined;
    this.logger.warn(`refused command ${JSON.stringify(command.command_id ?? null)}: ${error}`);
    if (testId === undefined) return { accepted: false, error, reported: false, persisted: Promise.resolve() };
    const busy = [...this.jobs.values()].some((j) => !j.finished && j.testId === testId);
    if (busy && commandId === undefined) {
      this.logger.warn(`refused command for test ${testId}: a job of that test is running, so nothing is posted to it`);
      return { accepted: false, error, reported: false, persisted: Promise.resolve() };
    }
    const outcome: JournalOutcome = { status: "failed", error };
    const type = typeof command.type === "string" ? command.type.slice(0, 64) : "invalid";
    let key = commandId ?? "";
    let persisted: Promise<void> = Promise.resolve();
    if (this.journal !== undefined && this.journalLoad !== undefined) {
      const r = this.journal.refused({ commandId, testId, type, acceptedAt: this.now() }, outcome);
      key = r.key;
      persisted = r.durable;
    }
    void persisted
      .catch((err: unknown) => this.logger.error(`cannot journal the refusal of ${commandId ?? `a command of test ${testId}`}: ${errorText(err)}`))
      .then(() => this.deliver({ key, commandId, testId }, outcome, { statusToo: !busy }))
      .then(() => this.notifyIdle());
    return { accepted: false, error, reported: true, persisted };
  }

  /**
   * Hands a decided outcome to the reporter (result, when there is a command
   * id, then the terminal status), then marks it done in the journal.
   */
  private async deliver(
    target: { key: string; commandId: string | undefined; testId: string },
    outcome: JournalOutcome,
    options: { statusToo?: boolean; recovering?: boolean } = {},
  ): Promise<void> {
    const { key, commandId, testId } = target;
    const report: JobOutcome = { status: outcome.status, ...(outcome.error !== undefined ? { error: outcome.error } : {}), ...(outcome.resultData !== undefined ? { resultData: outcome.resultData } : {}) };
    const update: StatusUpdate = outcome.status === "completed" ? { status: "completed" } : { status: "failed", error: outcome.error || "failed" };
    const reporter = this.opts.reporter;
    const journaled = key !== "" && this.journal !== undefined && this.journalLoad !== undefined;
    const resultKey = `${key}:result`;
    const statusKey = `${key}:status`;
    const sendResult = commandId !== undefined;
    const sendStatus = options.statusToo !== false;
    // Until the journal says "done", the outbox holds these: a crash before it is recovered from the
    // journal, and what the outbox already holds (recovery asks) is not queued a second time.
    const keys = journaled ? [...(sendResult ? [resultKey] : []), ...(sendStatus ? [statusKey] : [])] : [];
    if (keys.length > 0) reporter.hold?.(keys);
    const queued = (k: string) => options.recovering === true && reporter.hasPending?.(k) === true;
    const ref = commandId !== undefined ? { job: commandId } : {};
    if (sendResult && !queued(resultKey)) {
      await this.report(testId, () => reporter.result(testId, resultOf(commandId, report, outcome.containerId), { ...ref, ...(journaled ? { key: resultKey } : {}) }));
    }
    if (sendStatus && !queued(statusKey)) {
      await this.report(testId, () => reporter.status(testId, update, { ...ref, ...(journaled ? { key: statusKey } : {}) }));
    }
    if (journaled) await this.journalWrite(() => this.journal?.done(key));
    if (keys.length > 0) reporter.release?.(keys);
  }

  /** A journal write whose failure is logged, not thrown. */
  private async journalWrite(write: () => Promise<void> | undefined): Promise<void> {
    if (this.journal === undefined || this.journalLoad === undefined) return;
    try {
      await write();
    } catch (err) {
      this.logger.warn(`cannot update the job journal: ${errorText(err)}`);
    }
  }

  /** Records the host process group a benchmark leads, with its start time, for crash recovery. */
  private recordProcess(job: Job, pid: number | undefined): void {
    if (pid === undefined || this.journal === undefined || this.journalLoad === undefined) return;
    const journal = this.journal;
    void readProcStat(pid).then((st) => {
      if (st === undefined) return;
      return this.journalWrite(() => journal.processStarted(job.commandId, st.pgrp === pid ? pid : st.pgrp, st.startTicks));
    });
  }

  private pump(): void {
    const max = Math.max(1, this.opts.maxConcurrent ?? 1);
    while (this.running.size < max && this.queue.length > 0) {
      const job = this.queue.shift() as Job;
      this.running.add(job);
      void this.execute(job);
    }
    if (!this.busy) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private startImmediate(spec: JobSpec): SubmitResult {
    const job = this.newJob(spec);
    this.jobs.set(spec.commandId, job);
    const persisted = this.journalJob(job);
    this.logger.info(`job ${spec.commandId} received: ${describeSpec(spec)}`);
    this.immediate.add(job);
    void this.execute(job, true);
    return { accepted: true, job: job.info(), persisted };
  }

  private async runJob(job: Job): Promise<JobOutcome> {
    const spec = job.spec;
    switch (spec.kind) {
      case "run_test":
        return runTestJob(job, spec, this.ctx);
      case "cleanup_storage":
        return runCleanupJob(job, spec, this.opts.resolver, this.running, (path, except) => this.modelInUse(path, except));
      case "run_container": {
        const c = this.opts.containers;
        return runContainerJob(job, spec, {
          runtime: c?.runtime,
          agentLabel: c?.agentLabel ?? "kitt-agent",
          gpusAllowed: c?.gpusAllowed ?? (() => false),
          killGraceMs: this.ctx.killGraceMs,
          maxLineChars: this.ctx.maxLineChars,
          logger: this.logger,
        });
      }
      case "stop_container":
        return this.stopContainer(spec.target)
          ? { status: "completed", resultData: { stopped: true } }
          : { status: "failed", error: "No active container for this command" };
      case "check_docker": {
        const answer = await this.checkDocker();
        return { status: "completed", resultData: answer };
      }
      case "install_engine":
      case "start_engine":
      case "stop_engine":
        return runEngineJob(job, spec, this.opts.engines);
    }
  }

  private async execute(job: Job, immediate = false): Promise<void> {
    // Journal first, then run: a crash from here on is recovered.
    await this.persisted.get(job)?.catch(() => {});
    job.state = "running";
    job.startedAt = this.now();
    await this.report(job.testId, () => this.opts.reporter.status(job.testId, { status: "running" }, { job: job.commandId }));
    let outcome: JobOutcome;
    try {
      // A benchmark's records and reports need room in the state dir (the default model dir shares its disk).
      const full = job.spec.kind === "run_test" && this.opts.stateDir !== undefined ? await stateDiskProblem(this.opts.stateDir) : undefined;
      outcome = full !== undefined ? { status: "failed", error: full } : await this.runJob(job);
    } catch (err) {
      // A bug, not an outcome the code foresaw: the job still ends, and says why.
      this.logger.error(`job ${job.commandId} crashed: ${errorText(err)}`);
      outcome = { status: "failed", error: `internal error: ${errorText(err)}` };
    }
    await this.finish(job, outcome, immediate ? "immediate" : "running");
  }

  /** Result, then exactly one terminal status; then the log stream ends. */
  private async finish(job: Job, outcome: JobOutcome, lane: "running" | "immediate" | "queue"): Promise<void> {
    job.state = outcome.status;
    job.outcome = outcome;
    job.endedAt = this.now();
    job.log(outcome.status === "completed" ? "Job completed" : `Job failed: ${outcome.error ?? ""}`);
    const took = job.startedAt !== undefined ? `${((job.endedAt - job.startedAt) / 1000).toFixed(1)} s` : "never started";
    this.logger.info(
      `job ${job.commandId} (test ${job.testId}) finished: ${outcome.status}${outcome.error !== undefined ? ` (${outcome.error})` : ""}` +
        `${outcome.exitCode !== undefined ? `, exit code ${outcome.exitCode}` : ""}, ${took}, ${job.logs.lastSeq} log line(s)`,
    );
    const recorded: JournalOutcome = {
      status: outcome.status,
      ...(outcome.error !== undefined ? { error: outcome.error } : {}),
      ...(outcome.resultData !== undefined ? { resultData: outcome.resultData } : {}),
      ...(job.containerId !== undefined ? { containerId: job.containerId } : {}),
    };
    // The outcome is on disk before it goes to the outbox: a crash in between reports this outcome, not another.
    const journaled = this.persisted.get(job);
    this.persisted.delete(job);
    const inJournal = journaled !== undefined && (await journaled.then(() => true, () => false));
    if (inJournal) await this.journalWrite(() => this.journal?.outcome(job.commandId, recorded));
    await this.deliver({ key: inJournal ? job.commandId : "", commandId: job.commandId, testId: job.testId }, recorded);
    job.logs.end(outcome);
    if (lane === "running") this.running.delete(job);
    if (lane === "immediate") this.immediate.delete(job);
    this.remember(job);
    this.pump();
    this.notifyIdle();
  }

  /** Calls onIdle when nothing runs or waits in the queue lane. */
  private notifyIdle(): void {
    if (this.running.size > 0 || this.queue.length > 0 || this.opts.onIdle === undefined) return;
    try {
      this.opts.onIdle();
    } catch (err) {
      this.logger.error(`onIdle callback failed: ${errorText(err)}`);
    }
  }

  /** Writes the job's acceptance to the journal; the returned promise is the job's `persisted`. */
  private journalJob(job: Job): Promise<void> {
    const journal = this.journal;
    if (journal === undefined) return Promise.resolve();
    const spec = job.spec;
    const persisted = this.loadJournal().then(() => journal.accepted({ commandId: spec.commandId, testId: spec.testId, type: spec.kind, acceptedAt: job.queuedAt }));
    persisted.catch((err: unknown) => this.logger.error(`cannot journal job ${spec.commandId}: ${errorText(err)}; a crash would lose it`));
    this.persisted.set(job, persisted);
    return persisted;
  }

  private newJob(spec: JobSpec): Job {
    const dir = this.historyDir;
    return new Job(spec, {
      reporter: this.opts.reporter,
      logger: this.logger,
      ringLines: this.opts.ringLines ?? DEFAULT_RING_LINES,
      now: this.now(),
      ...(dir !== undefined ? { historyPath: join(dir, `${spec.commandId}.log`) } : {}),
    });
  }

  /** Where jobs keep their whole log for late readers (`<stateDir>/job-logs`), while the runner remembers them. */
  private get historyDir(): string | undefined {
    return this.opts.stateDir === undefined ? undefined : join(this.opts.stateDir, "job-logs");
  }

  private remember(job: Job): void {
    this.finishedOrder.push(job.commandId);
    const keep = this.opts.keepFinished ?? 20;
    while (this.finishedOrder.length > keep) {
      const id = this.finishedOrder.shift() as string;
      void this.jobs.get(id)?.logs.history?.remove();
      this.jobs.delete(id);
    }
  }

  private async report(testId: string, send: () => void | Promise<void>): Promise<void> {
    try {
      await send();
    } catch (err) {
      this.logger.error(`reporting for test ${testId} failed: ${errorText(err)}`);
    }
  }
}

/** One line for the agent's log: what a job is. */
function describeSpec(spec: JobSpec): string {
  if (spec.kind === "run_test") return `run_test, test ${spec.testId}, model ${spec.modelPath}, engine ${spec.engine}, suite ${spec.suite}`;
  if (spec.kind === "cleanup_storage") return `cleanup_storage of ${spec.modelPath}`;
  return `${spec.kind}, test ${spec.testId}`;
}

/** Never wait in the queue: a service container runs beside benchmarks; queries answer at once. */
const IMMEDIATE_KINDS = new Set<JobSpec["kind"]>(["run_container", "stop_container", "check_docker", "stop_engine"]);

function resultOf(commandId: string, outcome: JobOutcome, containerId = ""): ResultReport {
  const report: ResultReport = { command_id: commandId, status: outcome.status, container_id: containerId, error: outcome.error ?? "" };
  if (outcome.resultData !== undefined) report.result_data = outcome.resultData;
  return report;
}
