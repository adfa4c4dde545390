import { rm } from "node:fs/promises";
import { join } from "node:path";

import { silentLogger, type Logger, type ResultReport, type ServerCommand, type StatusUpdate } from "@kitt/protocol";

import { DEFAULT_KILL_GRACE_MS } from "./benchmark-process.js";
import { checkCommand, type JobSpec } from "./command-validation.js";
import { errorText, Job } from "./job.js";
import { JobJournal } from "./job-journal.js";
import type { JobInfo, JobOutcome, ModelResolver, Reporter } from "./job-types.js";
import { DEFAULT_RING_LINES } from "./log-stream.js";
import { runCleanupJob } from "./run-cleanup.js";
import { runTestJob, type RunContext } from "./run-test.js";
import { executionPlanner, type PlanExecution } from "./execution-planner.js";
import type { ContainerRuntime } from "@kitt/containers";
import { runContainerJob, STOPPED_BY_REQUEST } from "./run-container.js";

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
  logger?: Logger;
  now?: () => number;
}

export type SubmitResult = { accepted: true; job: JobInfo } | { accepted: false; error: string; reported: boolean };

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
  private readonly journaled = new Map<Job, Promise<void>>();
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
      logger: this.logger,
    };
    this.journal = options.stateDir === undefined ? undefined : new JobJournal(join(options.stateDir, "jobs"));
  }

  /**
   * Reports the jobs a previous run of the agent accepted but never reported
   * (it was killed) as failed with `reason`, and removes run output left
   * behind. Call once at start, before submitting anything. Returns the
   * command ids reported.
   */
  async recoverInterrupted(reason: string = AGENT_RESTARTED): Promise<string[]> {
    await rm(join(this.opts.workDir, "runs"), { recursive: true, force: true });
    if (this.journal === undefined) return [];
    await this.journal.init();
    const reported: string[] = [];
    for (const rec of await this.journal.leftovers()) {
      if (this.jobs.has(rec.commandId)) continue;
      this.logger.warn(`job ${rec.commandId} (test ${rec.testId}) was interrupted by an agent restart: reporting it failed`);
      await this.report(rec.testId, () => this.opts.reporter.result(rec.testId, resultOf(rec.commandId, { status: "failed", error: reason })));
      await this.report(rec.testId, () => this.opts.reporter.status(rec.testId, { status: "failed", error: reason }));
      await this.journal.remove(rec.commandId);
      reported.push(rec.commandId);
    }
    return reported;
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
    if (this.jobs.has(spec.commandId)) {
      // The first one is (or was) reported by its own job: never twice.
      return { accepted: false, error: `command ${spec.commandId} was already received`, reported: false };
    }
    if (!this.accepting) return this.refuse(command, "Agent shutting down");
    if (IMMEDIATE_KINDS.has(spec.kind)) return this.startImmediate(spec);
    const waiting = this.queue.length;
    const maxQueued = this.opts.maxQueued ?? 16;
    const mustWait = this.running.size >= (this.opts.maxConcurrent ?? 1);
    if (mustWait && waiting >= maxQueued) return this.refuse(command, `job queue is full (${waiting} jobs waiting)`);
    const job = new Job(spec, { reporter: this.opts.reporter, logger: this.logger, ringLines: this.opts.ringLines ?? DEFAULT_RING_LINES, now: this.now() });
    this.jobs.set(spec.commandId, job);
    this.journalJob(job);
    this.queue.push(job);
    if (mustWait) job.log(`Queued behind ${this.running.size + waiting} job(s)`);
    this.pump();
    return { accepted: true, job: job.info() };
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

  private refuse(command: ServerCommand, error: string): SubmitResult {
    const testId = command.test_id;
    const commandId = command.command_id;
    const reported = typeof testId === "string" && testId !== "" && typeof commandId === "string" && commandId !== "";
    this.logger.warn(`refused command ${JSON.stringify(commandId ?? null)}: ${error}`);
    if (reported) {
      void (async () => {
        await this.report(testId, () => this.opts.reporter.result(testId, resultOf(commandId, { status: "failed", error })));
        await this.report(testId, () => this.opts.reporter.status(testId, { status: "failed", error }));
      })();
    }
    return { accepted: false, error, reported };
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
    const job = new Job(spec, { reporter: this.opts.reporter, logger: this.logger, ringLines: this.opts.ringLines ?? DEFAULT_RING_LINES, now: this.now() });
    this.jobs.set(spec.commandId, job);
    this.journalJob(job);
    this.immediate.add(job);
    void this.execute(job, true);
    return { accepted: true, job: job.info() };
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
    }
  }

  private async execute(job: Job, immediate = false): Promise<void> {
    job.state = "running";
    job.startedAt = this.now();
    await this.report(job.testId, () => this.opts.reporter.status(job.testId, { status: "running" }));
    let outcome: JobOutcome;
    try {
      outcome = await this.runJob(job);
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
    const update: StatusUpdate = outcome.status === "completed" ? { status: "completed" } : { status: "failed", error: outcome.error || "failed" };
    await this.report(job.testId, () => this.opts.reporter.result(job.testId, resultOf(job.commandId, outcome, job.containerId)));
    await this.report(job.testId, () => this.opts.reporter.status(job.testId, update));
    job.logs.end(outcome);
    await this.unjournal(job);
    if (lane === "running") this.running.delete(job);
    if (lane === "immediate") this.immediate.delete(job);
    this.remember(job);
    this.pump();
  }

  private journalJob(job: Job): void {
    if (this.journal === undefined) return;
    const spec = job.spec;
    const record = { commandId: spec.commandId, testId: spec.testId, type: spec.kind, acceptedAt: job.queuedAt };
    const journal = this.journal;
    this.journaled.set(
      job,
      journal
        .init()
        .then(() => journal.add(record))
        .catch((err: unknown) => this.logger.warn(`cannot journal job ${spec.commandId}: ${errorText(err)}`)),
    );
  }

  private async unjournal(job: Job): Promise<void> {
    const pending = this.journaled.get(job);
    if (pending === undefined || this.journal === undefined) return;
    this.journaled.delete(job);
    await pending;
    await this.journal.remove(job.commandId).catch((err: unknown) => this.logger.warn(`cannot update the job journal: ${errorText(err)}`));
  }

  private remember(job: Job): void {
    this.finishedOrder.push(job.commandId);
    const keep = this.opts.keepFinished ?? 20;
    while (this.finishedOrder.length > keep) this.jobs.delete(this.finishedOrder.shift() as string);
  }

  private async report(testId: string, send: () => void | Promise<void>): Promise<void> {
    try {
      await send();
    } catch (err) {
      this.logger.error(`reporting for test ${testId} failed: ${errorText(err)}`);
    }
  }
}

/** Never wait in the queue: a service container runs beside benchmarks; queries answer at once. */
const IMMEDIATE_KINDS = new Set<JobSpec["kind"]>(["run_container", "stop_container", "check_docker"]);

function resultOf(commandId: string, outcome: JobOutcome, containerId = ""): ResultReport {
  const report: ResultReport = { command_id: commandId, status: outcome.status, container_id: containerId, error: outcome.error ?? "" };
  if (outcome.resultData !== undefined) report.result_data = outcome.resultData;
  return report;
}
