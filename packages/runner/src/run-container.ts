import type { ContainerRuntime, ContainerSpec } from "@kitt/containers";
import type { Logger } from "@kitt/protocol";

import { describeExit, ProcessStartError } from "./benchmark-process.js";
import { LABEL_AGENT, LABEL_COMMAND, LABEL_ROLE, LABEL_TEST, launchContainer } from "./container-executor.js";
import type { RunContainerSpec } from "./container-command.js";
import { errorText, type Job } from "./job.js";
import type { JobOutcome } from "./job-types.js";

export const HEALTH_CHECK_TIMEOUT = "Health check timeout";
export const STOPPED_BY_REQUEST = "Stopped by stop_container";

export interface ContainerContext {
  runtime: ContainerRuntime | undefined;
  agentLabel: string;
  /** Whether a container that asks for GPUs gets them (docker_gpus, and whether the host has any). */
  gpusAllowed: () => boolean;
  killGraceMs: number;
  maxLineChars: number | undefined;
  logger: Logger;
  /** Seams for the health wait. */
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A service container (an engine, a tool) started for the server: pulled
 * when missing, started detached, waited for on its health URL (bounded),
 * then followed until it exits or stop_container stops it. Its output is
 * the job's log; the container is removed at the end, whatever happened.
 */
export async function runContainerJob(job: Job, spec: RunContainerSpec, ctx: ContainerContext): Promise<JobOutcome> {
  const rt = ctx.runtime;
  if (rt === undefined) return { status: "failed", error: "Docker is not available on this agent" };
  try {
    if ((await rt.inspectImage(spec.image)) === undefined) {
      job.log(`Pulling image: ${spec.image}`);
      await rt.pullImage(spec.image, { onProgress: (line) => job.log(line), signal: job.abort.signal });
    }
  } catch (err) {
    if (job.cancelReason !== undefined) return { status: "failed", error: job.cancelReason };
    return { status: "failed", error: `cannot pull image ${spec.image}: ${errorText(err)}` };
  }
  if (job.cancelReason !== undefined) return { status: "failed", error: job.cancelReason };
  const gpus = spec.gpu && ctx.gpusAllowed();
  if (spec.gpu && !gpus) job.log("GPUs asked for, but this host gives containers none (docker_gpus, or no NVIDIA GPU): starting without GPUs");
  const containerSpec: ContainerSpec = {
    name: spec.name,
    image: spec.image,
    cmd: spec.commandArgs,
    env: spec.env,
    labels: { [LABEL_AGENT]: ctx.agentLabel, [LABEL_COMMAND]: spec.commandId, [LABEL_TEST]: spec.testId, [LABEL_ROLE]: "service" },
    mounts: spec.volumes.map((v) => ({ source: v.host, target: v.container, readOnly: false })),
    gpus,
    ...(spec.networkMode !== undefined ? { networkMode: spec.networkMode } : {}),
    ...(spec.port !== undefined && spec.containerPort !== undefined ? { ports: [{ hostPort: spec.port, containerPort: spec.containerPort }] } : {}),
    ...(spec.shmSizeBytes !== undefined ? { shmSizeBytes: spec.shmSizeBytes } : {}),
    ...(spec.ipcMode !== undefined ? { ipcMode: spec.ipcMode } : {}),
    ...(spec.ulimits.length > 0 ? { ulimits: spec.ulimits } : {}),
  };
  job.log("Starting container...");
  let launched: Awaited<ReturnType<typeof launchContainer>>;
  try {
    launched = await launchContainer(rt, containerSpec, { onLine: (line) => job.log(line), killGraceMs: ctx.killGraceMs, timeoutMs: undefined, maxLineChars: ctx.maxLineChars }, ctx.logger);
  } catch (err) {
    return { status: "failed", error: err instanceof ProcessStartError ? err.message : `cannot start container: ${errorText(err)}` };
  }
  const { execution } = launched;
  job.execution = execution;
  job.containerId = launched.id.slice(0, 12);
  job.log(`Container started: ${job.containerId} (${launched.name})`);
  if (job.cancelReason !== undefined) execution.stop("cancel");
  if (spec.healthUrl !== undefined && job.cancelReason === undefined) {
    job.log(`Waiting for health: ${spec.healthUrl} (up to ${spec.healthTimeoutS} s)`);
    const healthy = await waitHealthy(spec.healthUrl, spec.healthTimeoutS * 1000, ctx, () => job.cancelReason !== undefined, execution.done);
    if (healthy === "healthy") job.log(`Container healthy: ${job.containerId}`);
    else if (healthy === "exited") job.log("The container exited before it became healthy");
    else if (job.cancelReason === undefined) {
      job.log("Health check timed out: stopping the container");
      execution.stop("cancel");
      await execution.done;
      job.execution = undefined;
      return { status: "failed", error: HEALTH_CHECK_TIMEOUT };
    }
  }
  const outcome = await execution.done;
  job.execution = undefined;
  job.log("--- Container exited ---");
  if (outcome.stoppedBy !== undefined) {
    if (job.cancelReason === STOPPED_BY_REQUEST) return { status: "completed" };
    return { status: "failed", error: job.cancelReason ?? "Cancelled" };
  }
  if (outcome.exitCode !== 0) return { status: "failed", error: describeExit(outcome) };
  return { status: "completed" };
}

type Health = "healthy" | "timeout" | "exited";

/** Polls `url` until it answers below 500, the container exits, or `timeoutMs` passes. */
async function waitHealthy(url: string, timeoutMs: number, ctx: ContainerContext, cancelled: () => boolean, exited: Promise<unknown>): Promise<Health> {
  const doFetch = ctx.fetch ?? fetch;
  const sleep = ctx.sleep ?? defaultSleep;
  const now = ctx.now ?? Date.now;
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = now() + timeoutMs;
  let interval = 500;
  while (now() < deadline) {
    if (cancelled()) return "timeout";
    if (gone) return "exited";
    try {
      const res = await doFetch(url, { signal: AbortSignal.timeout(Math.min(5_000, Math.max(1, deadline - now()))), redirect: "manual" });
      await res.body?.cancel().catch(() => {});
      if (res.status < 500) return "healthy";
    } catch {
      // not listening yet
    }
    await sleep(Math.min(interval, Math.max(0, deadline - now())));
    interval = Math.min(interval * 1.5, 5_000);
  }
  return gone ? "exited" : "timeout";
}
