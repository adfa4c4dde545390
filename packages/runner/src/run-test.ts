import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";

import type { Logger } from "@kitt/protocol";

import { describeExit, ProcessStartError } from "./benchmark-process.js";
import type { RunTestSpec } from "./command-validation.js";
import type { Execution, Executor } from "./executor.js";
import type { PlanExecution } from "./execution-planner.js";
import { JOB_ENV } from "./process-group.js";
import { errorText, type Job } from "./job.js";
import type { JobOutcome, ModelResolver, StagedModel } from "./job-types.js";
import { readMetricsFile } from "./metrics-file.js";

/** What a run_test job needs from the runner. */
export interface RunContext {
  resolver: ModelResolver;
  /** Where each run_test job runs (host CLI or KITT image). */
  plan: PlanExecution;
  env: NodeJS.ProcessEnv;
  /** Fresh output directories are made under `<workDir>/runs`. */
  workDir: string;
  killGraceMs: number;
  benchmarkTimeoutMs: number | undefined;
  maxLineChars: number | undefined;
  autoCleanup: () => boolean;
  /** True while another unfinished job (queued or running) uses the model. */
  modelInUse: (modelPath: string, except: Job) => boolean;
  /** The benchmark has started (the runner journals a host process group, for crash recovery). */
  onExecution?: (job: Job, execution: Execution) => void;
  logger: Logger;
}

export function benchmarkArgs(spec: RunTestSpec, localPath: string, outputDir: string): string[] {
  const args = ["run", "-m", localPath, "-e", spec.engine, "-s", spec.suite, "-o", outputDir];
  if (spec.engineMode !== undefined) args.push("--mode", spec.engineMode);
  return args;
}

/**
 * The benchmark's environment: the agent's, minus its own configuration
 * (`KITT_AGENT_*`, which may carry the agent token), plus unbuffered
 * Python output (a pipe makes Python buffer stdout in blocks, and progress
 * would arrive in bursts).
 */
export function benchmarkEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(env)) if (!key.startsWith("KITT_AGENT_")) out[key] = value;
  out.PYTHONUNBUFFERED = "1";
  return out;
}

/** Before each read of the benchmark's output, how long live readers far behind may hold it up at most. */
const READER_PACE_MS = 10;

function failed(error: string): JobOutcome {
  return { status: "failed", error };
}

/**
 * Stages the model, runs the benchmark, reads metrics.json and cleans up.
 * Returns the outcome; never throws (every failure is an outcome).
 */
export async function runTestJob(job: Job, spec: RunTestSpec, ctx: RunContext): Promise<JobOutcome> {
  const plan = await ctx.plan((line) => job.log(line));
  if (!plan.ok) return failed(plan.error);
  if (job.cancelReason !== undefined) return failed(job.cancelReason);
  job.log(`Staging model ${spec.modelPath}`);
  let staged: StagedModel;
  try {
    staged = await ctx.resolver.resolve(spec.modelPath, { onLog: (line) => job.log(line), signal: job.abort.signal });
  } catch (err) {
    if (job.cancelReason !== undefined) return failed(job.cancelReason);
    return failed(`model staging failed: ${errorText(err)}`);
  }
  let outputDir: string | undefined;
  try {
    if (job.cancelReason !== undefined) return failed(job.cancelReason);
    const runsDir = join(ctx.workDir, "runs");
    await mkdir(runsDir, { recursive: true, mode: 0o700 });
    outputDir = await mkdtemp(join(runsDir, `${spec.commandId}-`));
    return await runBenchmark(job, spec, ctx, plan.executor, staged.localPath, outputDir);
  } catch (err) {
    return failed(`benchmark run failed: ${errorText(err)}`);
  } finally {
    if (outputDir !== undefined) await rm(outputDir, { recursive: true, force: true }).catch(() => {});
    await release(job, spec, ctx, staged);
  }
}

async function runBenchmark(job: Job, spec: RunTestSpec, ctx: RunContext, executor: Executor, localPath: string, outputDir: string): Promise<JobOutcome> {
  const args = benchmarkArgs(spec, localPath, outputDir);
  job.log(`Running ${executor.commandLine(args)}`);
  let execution: Execution;
  try {
    execution = await executor.start({
      commandId: spec.commandId,
      testId: spec.testId,
      args,
      // The job's mark: after an agent crash, recovery finds what the benchmark left by it.
      env: { ...benchmarkEnv(ctx.env), [JOB_ENV]: spec.commandId },
      outputDir,
      modelPath: localPath,
      onLine: (line) => job.log(line),
      // Live SSE readers get a moment to keep up with a burst; the benchmark itself never waits.
      pace: () => job.logs.letReadersCatchUp(READER_PACE_MS),
      killGraceMs: ctx.killGraceMs,
      timeoutMs: ctx.benchmarkTimeoutMs,
      maxLineChars: ctx.maxLineChars,
    });
  } catch (err) {
    if (err instanceof ProcessStartError) return failed(err.message);
    throw err;
  }
  job.execution = execution;
  ctx.onExecution?.(job, execution);
  ctx.logger.info(`job ${spec.commandId} (test ${spec.testId}) started: ${execution.where}`);
  if (job.cancelReason !== undefined) execution.stop("cancel");
  const outcome = await execution.done;
  job.execution = undefined;
  if (outcome.stoppedBy === "cancel") return failed(job.cancelReason ?? "Cancelled");
  if (outcome.stoppedBy === "timeout") return failed(`Timed out after ${Math.round((ctx.benchmarkTimeoutMs ?? 0) / 1000)} s`);
  const exit = outcome.exitCode !== null ? { exitCode: outcome.exitCode } : {};
  if (outcome.exitCode !== 0) return { ...failed(describeExit(outcome)), ...exit };
  const resultData = await readMetrics(job, outputDir);
  return resultData === undefined ? { status: "completed", ...exit } : { status: "completed", resultData, ...exit };
}

/**
 * metrics.json becomes result_data. The benchmark's exit code is what says
 * whether the run succeeded: a missing or unusable metrics.json (see
 * metrics-file.ts) leaves the job completed without result_data, and a log
 * line says why.
 */
async function readMetrics(job: Job, outputDir: string): Promise<Record<string, unknown> | undefined> {
  const read = await readMetricsFile(outputDir);
  if (read.ok) return read.data;
  job.log(`${read.reason}: result sent without result_data`);
  return undefined;
}

async function release(job: Job, spec: RunTestSpec, ctx: RunContext, staged: StagedModel): Promise<void> {
  try {
    await staged.release();
  } catch (err) {
    ctx.logger.warn(`releasing model ${spec.modelPath} failed: ${errorText(err)}`);
  }
  if (!ctx.autoCleanup() || staged.staged === false) return;
  if (ctx.modelInUse(spec.modelPath, job)) {
    job.log(`auto_cleanup: keeping ${spec.modelPath}, another job uses it`);
    return;
  }
  try {
    await ctx.resolver.evict(spec.modelPath, { onLog: (line) => job.log(line), localPath: staged.localPath });
    job.log(`auto_cleanup: evicted ${spec.modelPath}`);
  } catch (err) {
    job.log(`auto_cleanup: could not evict ${spec.modelPath}: ${errorText(err)}`);
  }
}
