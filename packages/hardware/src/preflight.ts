import { homedir } from "node:os";
import { join } from "node:path";
import { UsageError } from "@kitt/protocol";
import { createHostProbe } from "./host.js";
import {
  checkBenchmarkCli,
  checkDisk,
  checkNfs,
  checkNode,
  checkNvidiaDriver,
  checkPort,
  MIN_NODE_VERSION,
} from "./preflight-checks.js";
import { checkDockerGpu } from "./preflight-docker-gpu.js";
import { checkDocker, checkKittImage, dockerTarget } from "./preflight-docker.js";
import {
  PREFLIGHT_CHECK_IDS,
  type CheckOutcome,
  type PreflightCheck,
  type PreflightCheckId,
  type PreflightOptions,
  type PreflightResult,
} from "./preflight-types.js";
import { checkServerHealth } from "./server-health.js";
import { formatDuration } from "./units.js";

export const DEFAULT_AGENT_PORT = 8090;
export const DEFAULT_DOCKER_GPU_IMAGE = "nvidia/cuda:12.4.1-base-ubuntu22.04";

/** Generous where the work is slow (an image pull), short where an answer is immediate or never. */
export const DEFAULT_PREFLIGHT_TIMEOUTS_MS: Record<PreflightCheckId, number> = {
  node: 1000,
  docker: 15_000,
  "docker-gpu": 180_000,
  "nvidia-driver": 10_000,
  nfs: 5000,
  disk: 10_000,
  server: 10_000,
  port: 5000,
  "kitt-image": 15_000,
  "benchmark-cli": 5000,
};

function expandHome(path: string, home: string): string {
  if (path === "~") return home;
  return path.startsWith("~/") ? join(home, path.slice(2)) : path;
}

/**
 * A check's own limit is enforced inside it (a subprocess timeout, a request
 * timeout); this outer bound catches what has none, such as statfs on a hung
 * NFS mount, so one stuck check can never stall the whole preflight.
 */
function bounded<T extends CheckOutcome>(work: Promise<T>, limitMs: number): Promise<T | CheckOutcome> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<CheckOutcome>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `did not finish within ${formatDuration(limitMs)}` }), limitMs);
  });
  const caught = work.catch((error: unknown) => ({
    ok: false,
    detail: error instanceof Error ? error.message : String(error),
  }));
  return Promise.race([caught, late]).finally(() => clearTimeout(timer));
}

/** `make` run at most once, on the first call. */
function once<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}

/**
 * Runs every prerequisite check concurrently and reports each as pass, warn
 * (a failed optional check) or fail (a failed required one); those in
 * `skip` are not run and reported as skipped. `ok` is false when any required
 * check failed. Never throws for a failed check; a `skip` entry that names no
 * check is a UsageError.
 */
export async function runPreflight(options: PreflightOptions = {}): Promise<PreflightResult> {
  const host = options.host ?? createHostProbe();
  const timeouts = { ...DEFAULT_PREFLIGHT_TIMEOUTS_MS, ...options.timeoutsMs };
  const port = options.port ?? DEFAULT_AGENT_PORT;
  const home = options.homeDir ?? host.env.HOME ?? homedir();
  const modelDir = expandHome(options.modelDir ?? "~/.kitt/models", home);
  const minFreeGb = options.minFreeDiskGb ?? 50;
  const image = options.dockerImage ?? DEFAULT_DOCKER_GPU_IMAGE;
  const benchmark = options.benchmarkCommand ?? "kitt";
  const serverUrl = options.serverUrl ?? "";
  // The outer bound leaves the inner timeout room to report its own, clearer message.
  const limit = (id: PreflightCheckId): number => timeouts[id] + 1000;

  const skip = new Set(options.skip ?? []);
  for (const id of skip) {
    if (!(PREFLIGHT_CHECK_IDS as readonly string[]).includes(id)) {
      throw new UsageError(`no preflight check named ${JSON.stringify(id)} (valid: ${PREFLIGHT_CHECK_IDS.join(", ")})`);
    }
  }

  // One engine for the three Docker checks; made here, closed when they are done.
  const target = dockerTarget(host, options.containerRuntime, timeouts.docker);
  // Started on first use: a skipped check costs nothing unless a check that runs needs its answer.
  const docker = once(() => bounded(checkDocker(target), limit("docker")));
  const driver = once(() => bounded(checkNvidiaDriver(host, options.nvml ?? {}, timeouts["nvidia-driver"]), limit("nvidia-driver")));
  const planned: Array<[PreflightCheckId, string, boolean, () => Promise<CheckOutcome>]> = [
    ["node", `Node.js >= ${MIN_NODE_VERSION}`, true, async () => checkNode(options.nodeVersion ?? process.versions.node)],
    ["docker", "Docker available", true, docker],
    [
      "docker-gpu",
      "Docker GPU access",
      true,
      () =>
        bounded(
          checkDockerGpu({ target, host, image, timeoutMs: timeouts["docker-gpu"], docker: docker(), driver: driver() }),
          limit("docker") + limit("nvidia-driver") + limit("docker-gpu"),
        ),
    ],
    ["nvidia-driver", "NVIDIA drivers", true, driver],
    ["nfs", "NFS utilities", false, () => bounded(checkNfs(host), limit("nfs"))],
    ["disk", `Disk space >= ${minFreeGb} GiB`, false, () => bounded(checkDisk(modelDir, minFreeGb), limit("disk"))],
    [
      "server",
      "Server reachable",
      serverUrl !== "",
      async () =>
        serverUrl === ""
          ? { ok: false, detail: "not run: no server URL given" }
          : bounded(checkServerHealth(serverUrl, options.tls ?? {}, timeouts.server, options.agent), limit("server")),
    ],
    ["port", "Port available", false, () => bounded(checkPort(port), limit("port"))],
    [
      "kitt-image",
      "KITT Docker image",
      false,
      () => bounded(checkKittImage(target, docker(), options.kittImage, host.os.machine), limit("docker") + limit("kitt-image")),
    ],
    ["benchmark-cli", "Benchmark CLI found", false, () => bounded(checkBenchmarkCli(host, benchmark), limit("benchmark-cli"))],
  ];

  const checks = await Promise.all(
    planned.map(async ([id, name, required, run]): Promise<PreflightCheck> => {
      if (skip.has(id)) return { id, name, required, status: "skipped", detail: "not run: skipped" };
      const { ok, detail } = await run();
      return { id, name, required, status: ok ? "pass" : required ? "fail" : "warn", detail };
    }),
  );
  // Only a runtime made here is ours to close.
  if (options.containerRuntime === undefined) target.runtime?.close();
  return { ok: checks.every((check) => check.status !== "fail"), checks };
}
