/**
 * Chooses where a run_test job runs, as the original agent does: the
 * configured KITT image when present locally and built for this host, else
 * `kitt:latest` likewise, else the `kitt` CLI on the host, else nothing
 * (the job fails saying so). `execution: docker|host` keeps to one place.
 * Every candidate passed over is said in the job log.
 */
import { chooseKittImage, type ContainerRuntime, DEFAULT_KITT_IMAGE, dockerArch } from "@kitt/containers";
import { findExecutable, type Logger } from "@kitt/protocol";

import { ContainerExecutor } from "./container-executor.js";
import type { Executor } from "./executor.js";
import { HostExecutor } from "./host-executor.js";
import { errorText } from "./job.js";

export type ExecutionMode = "auto" | "docker" | "host";

export interface ExecutionPlannerOptions {
  /** Read for every job, so that a settings change applies to the next one. */
  mode?: () => ExecutionMode;
  /** The KITT image in effect (server setting, else agent.yaml; empty for none). */
  kittImage?: () => string;
  /** The host's benchmark CLI (name on PATH or path). */
  benchmarkCommand: string;
  /** The PATH the host CLI is looked up on. */
  env: NodeJS.ProcessEnv;
  /** The container engine; undefined when the agent has none. */
  runtime?: ContainerRuntime | undefined;
  /** Whether containers get the host's GPUs. */
  gpus?: () => boolean;
  /** `kitt.agent` label of the containers. */
  agentLabel: string;
  dockerSocket?: string | undefined;
  hostArch?: string;
  logger?: Logger;
}

export type Plan = { ok: true; executor: Executor } | { ok: false; error: string };

/** Decides per job; `log` gets one line per choice made. */
export type PlanExecution = (log: (line: string) => void) => Promise<Plan>;

export function executionPlanner(opts: ExecutionPlannerOptions): PlanExecution {
  return async (log) => {
    const mode = opts.mode?.() ?? "auto";
    const kittImage = opts.kittImage?.() ?? "";
    const passedOver: string[] = [];
    if (mode !== "host") {
      const docker = await tryImage(opts, kittImage);
      if (docker.executor !== undefined) {
        for (const line of docker.skipped) log(`Skipped: ${line}`);
        log(`The benchmark runs in the KITT image ${docker.executor.description.replace(/^image /, "")}${opts.gpus?.() === true ? " with all GPUs" : ""}`);
        return { ok: true, executor: docker.executor };
      }
      passedOver.push(...docker.skipped);
      if (mode === "docker") {
        return { ok: false, error: `no usable KITT image (${passedOver.join("; ")}); run kitt-agent build to build ${kittImage || DEFAULT_KITT_IMAGE}` };
      }
    }
    const executable = await findExecutable(opts.benchmarkCommand, opts.env);
    if (executable !== undefined) {
      for (const line of passedOver) log(`Skipped: ${line}`);
      log(`The benchmark runs on the host: ${executable}`);
      return { ok: true, executor: new HostExecutor(executable, opts.benchmarkCommand) };
    }
    const where = opts.benchmarkCommand.includes("/") ? "" : " on PATH";
    const hostMissing = `benchmark command ${JSON.stringify(opts.benchmarkCommand)} not found${where}`;
    if (mode === "host") return { ok: false, error: hostMissing };
    const images = passedOver.length > 0 ? `${passedOver.join("; ")}; ` : "";
    return { ok: false, error: `no KITT image and no host CLI: ${images}${hostMissing}. Run kitt-agent build to build the KITT image` };
  };
}

async function tryImage(opts: ExecutionPlannerOptions, kittImage: string): Promise<{ executor?: Executor; skipped: string[] }> {
  // No engine wired (a library user who only runs host CLIs): nothing to say in auto mode.
  if (opts.runtime === undefined) return { skipped: opts.mode?.() === "docker" ? ["Docker: no container engine configured"] : [] };
  try {
    const hostArch = opts.hostArch ?? dockerArch();
    const choice = await chooseKittImage(opts.runtime, { kittImage, hostArch });
    if (choice.ref === undefined) return { skipped: choice.skipped };
    const executor = new ContainerExecutor({
      runtime: opts.runtime,
      image: choice.ref,
      architecture: choice.image?.architecture || hostArch,
      agentLabel: opts.agentLabel,
      gpus: opts.gpus?.() ?? false,
      dockerSocket: opts.dockerSocket,
      ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
    });
    return { executor, skipped: choice.skipped };
  } catch (err) {
    return { skipped: [`Docker: ${errorText(err)}`] };
  }
}
