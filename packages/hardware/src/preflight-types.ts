import type { ContainerRuntime } from "@kitt/containers";

import type { NvmlAccess } from "./gpu-detect.js";
import type { HostProbe } from "./host.js";

/** Every check, in the order they are reported. */
export const PREFLIGHT_CHECK_IDS = [
  "node",
  "docker",
  "docker-gpu",
  "nvidia-driver",
  "nfs",
  "disk",
  "server",
  "port",
  "kitt-image",
  "benchmark-cli",
] as const;

export type PreflightCheckId = (typeof PREFLIGHT_CHECK_IDS)[number];

/** "skipped": not run because the caller said so; never a pass. */
export type CheckStatus = "pass" | "warn" | "fail" | "skipped";

export interface PreflightCheck {
  /** Stable key for scripts; `name` is for people. */
  id: PreflightCheckId;
  name: string;
  required: boolean;
  /** "warn" is a failed check that is not required; "skipped" one the caller asked not to run. */
  status: CheckStatus;
  /** One line. */
  detail: string;
}

export interface PreflightResult {
  /** False when any required check failed (a skipped check neither fails nor passes). */
  ok: boolean;
  /** Always in the same order, whatever order they finished in. */
  checks: PreflightCheck[];
}

/** agent.yaml's `tls` block: file paths, plus the `--insecure` switch. */
export interface PreflightTls {
  ca?: string;
  cert?: string;
  key?: string;
  /** Do not verify the server certificate (development only). */
  insecure?: boolean;
}

export interface PreflightOptions {
  /** KITT server to reach; without it the server check is reported as not run. */
  serverUrl?: string;
  /** The agent whose token the server check verifies with an authenticated call; without it only health is asked. */
  agent?: { name: string; token: string };
  /** Checks not to run (a CI runner without a GPU): reported as "skipped". */
  skip?: readonly PreflightCheckId[];
  tls?: PreflightTls;
  /** The agent's API port. Default 8090. */
  port?: number;
  /** Where models are staged; created if missing. Default ~/.kitt/models. */
  modelDir?: string;
  /** Default 50. */
  minFreeDiskGb?: number;
  /** The benchmark executable (name on PATH or path). Default "kitt". */
  benchmarkCommand?: string;
  /** Image for the Docker GPU check (pulled when missing). Default nvidia/cuda:12.4.1-base-ubuntu22.04. */
  dockerImage?: string;
  /**
   * agent.yaml's (or the server's) `kitt_image`: the KITT image check reports
   * which image a benchmark would run in, this one or kitt:latest. Empty or
   * absent means kitt:latest only.
   */
  kittImage?: string;
  /**
   * The Docker engine the Docker checks ask. Default: a DockerRuntime for
   * `host.env`'s DOCKER_HOST (else /var/run/docker.sock); the endpoint shown
   * and whether the engine is local are read from that same DOCKER_HOST.
   */
  containerRuntime?: ContainerRuntime;
  /** Version to judge, "22.13.0". Default: this process's. */
  nodeVersion?: string;
  /** Home directory for "~" in modelDir. Default: HOME of the host env, else the OS's. */
  homeDir?: string;
  /** Environment (DOCKER_HOST; PATH finds nvidia-smi, the NVIDIA container toolkit, mount.nfs, the benchmark CLI) and command runner. */
  host?: HostProbe;
  /** NVML library options, or false to go straight to nvidia-smi. */
  nvml?: NvmlAccess;
  /** Per-check limits in milliseconds. */
  timeoutsMs?: Partial<Record<PreflightCheckId, number>>;
}

/** What one check found; the runner turns it into pass/warn/fail. */
export interface CheckOutcome {
  ok: boolean;
  detail: string;
}
