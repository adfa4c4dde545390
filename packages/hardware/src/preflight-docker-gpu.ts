/**
 * "Docker GPU access": can a container get this host's GPUs? Cheap facts
 * first, so that a failure names its cause: no usable GPU on the host, no
 * NVIDIA container toolkit, a probe image that is neither here nor pullable.
 * The proof is still a real container with every GPU (`--gpus all`) running
 * `nvidia-smi -L`, through the Engine API, as benchmarks will run.
 */
import { randomBytes } from "node:crypto";

import { type ContainerRuntime, ContainerRuntimeUnavailableError, type EngineInfo } from "@kitt/containers";
import { isImageRef } from "@kitt/protocol";

import { hostPath, listHostDir, type HostProbe } from "./host.js";
import { engineErrorText, type DockerOutcome, type DockerTarget } from "./preflight-docker.js";
import type { CheckOutcome } from "./preflight-types.js";
import { firstLine } from "./run-command.js";
import { formatDuration } from "./units.js";
import { findOnPath } from "./which.js";

/** Executables of the NVIDIA container toolkit (any one shows it is installed). */
const TOOLKIT_TOOLS = ["nvidia-container-runtime-hook", "nvidia-container-runtime", "nvidia-container-cli", "nvidia-ctk"];
/** Where dockerd (a systemd service) finds them, whatever the agent's PATH says. */
const SYSTEM_DIRS = ["/usr/bin", "/usr/local/bin", "/usr/sbin", "/sbin", "/bin"];
/** Where `nvidia-ctk cdi generate` writes its spec. */
const CDI_DIRS = ["/etc/cdi", "/var/run/cdi"];

const TOOLKIT_HINT = "install nvidia-container-toolkit, run `nvidia-ctk runtime configure --runtime=docker` and restart Docker";

export interface ToolkitFacts {
  /** `nvidia` is among the engine's runtimes. */
  runtime: boolean;
  /** Toolkit executables found, as paths. */
  tools: string[];
  /** NVIDIA CDI spec files found. */
  cdiSpecs: string[];
}

export async function toolkitFacts(host: HostProbe, info: EngineInfo): Promise<ToolkitFacts> {
  const PATH = [host.env.PATH ?? "", ...SYSTEM_DIRS.map((d) => hostPath(host, d))].filter((p) => p !== "").join(":");
  const found = await Promise.all(TOOLKIT_TOOLS.map((tool) => findOnPath(tool, { PATH })));
  const specs = await Promise.all(
    CDI_DIRS.map(async (dir) => (await listHostDir(host, dir)).filter((f) => f.startsWith("nvidia")).map((f) => `${dir}/${f}`)),
  );
  return {
    runtime: info.runtimes.includes("nvidia"),
    tools: found.filter((p): p is string => p !== undefined),
    cdiSpecs: specs.flat(),
  };
}

function hasToolkit(facts: ToolkitFacts): boolean {
  return facts.runtime || facts.tools.length > 0 || facts.cdiSpecs.length > 0;
}

/** Why a pull failed, in the words an operator acts on. */
function pullFailure(image: string, error: unknown): string {
  const text = engineErrorText(error);
  const missing = `probe image ${image} is not present locally`;
  if (error instanceof ContainerRuntimeUnavailableError) return `${missing} and Docker stopped answering while pulling it: ${text}`;
  if (/dial tcp|no such host|i\/o timeout|connection refused|network is unreachable|TLS handshake timeout|Client\.Timeout|proxyconnect|server misbehaving|EOF/i.test(text)) {
    return `${missing} and the registry cannot be reached (${text}); docker load it, or pull it once the registry is reachable`;
  }
  if (/manifest unknown|not found|pull access denied|repository does not exist|unauthorized|denied/i.test(text)) {
    return `${missing} and the registry does not serve it (${text})`;
  }
  return `${missing} and cannot be pulled: ${text}`;
}

/** Runs `work` with an abort signal that fires after `ms`; the timer never outlives it. */
async function withDeadline<T>(ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`did not finish within ${formatDuration(ms)}`)), ms);
  try {
    return await work(controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

/** The probe image, pulled when missing; an outcome when it cannot be had. */
async function ensureProbeImage(runtime: ContainerRuntime, image: string, timeoutMs: number): Promise<CheckOutcome | undefined> {
  if ((await runtime.inspectImage(image)) !== undefined) return undefined;
  try {
    await withDeadline(timeoutMs, (signal) => runtime.pullImage(image, { signal }));
    return undefined;
  } catch (error) {
    if (/^did not finish within/.test(message(error))) {
      return { ok: false, detail: `probe image ${image} is not present locally and pulling it ${message(error)}` };
    }
    return { ok: false, detail: pullFailure(image, error) };
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function startFailure(text: string, facts: ToolkitFacts): string {
  if (/could not select device driver/i.test(text)) {
    return hasToolkit(facts)
      ? `Docker has no GPU device driver although the NVIDIA container toolkit is installed (${[...facts.tools, ...facts.cdiSpecs].join(", ")}): run \`nvidia-ctk runtime configure --runtime=docker\` and restart Docker (${text})`
      : `the NVIDIA container toolkit is not installed: Docker has no GPU device driver (${text}); ${TOOLKIT_HINT}`;
  }
  const cli = /nvidia-container-cli: ([^\n]+)/.exec(text);
  if (cli?.[1] !== undefined) return `the NVIDIA container toolkit cannot use the driver: ${cli[1].trim()}`;
  return `the GPU probe container did not start: ${text}`;
}

/** `docker run --rm --gpus all <image> nvidia-smi -L`, through the Engine API, bounded. */
async function proveGpuAccess(runtime: ContainerRuntime, image: string, timeoutMs: number, facts: ToolkitFacts): Promise<CheckOutcome> {
  const name = `kitt-preflight-gpu-${randomBytes(4).toString("hex")}`;
  let id: string;
  try {
    // No network: the probe needs none, and a broken bridge must not pass for a GPU problem.
    id = await runtime.createContainer({
      name,
      image,
      cmd: ["nvidia-smi", "-L"],
      labels: { "kitt.preflight": "docker-gpu" },
      gpus: true,
      networkMode: "none",
    });
  } catch (error) {
    return { ok: false, detail: `cannot create the GPU probe container from ${image}: ${engineErrorText(error)}` };
  }
  try {
    try {
      await runtime.startContainer(id);
    } catch (error) {
      return { ok: false, detail: startFailure(engineErrorText(error), facts) };
    }
    let output = "";
    const exit = await withDeadline(timeoutMs, async (signal) => {
      const following = runtime.followOutput(id, { onData: (chunk) => (output += chunk.toString("utf8")), signal }).catch(() => undefined);
      const stopped = new Promise<undefined>((resolve) => signal.addEventListener("abort", () => resolve(undefined), { once: true }));
      const status = await Promise.race([runtime.waitContainer(id), stopped]);
      // The log stream ends with the container; give it a moment to deliver the last bytes.
      if (status !== undefined) {
        let grace: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([following, new Promise((r) => (grace = setTimeout(r, 2000)))]);
        clearTimeout(grace);
      }
      return status;
    });
    if (exit === undefined) return { ok: false, detail: `the GPU probe container (${image}) did not finish within ${formatDuration(timeoutMs)}` };
    const gpus = output.split("\n").filter((line) => /^GPU \d+:/.test(line.trim())).length;
    if (exit.exitCode === 0) {
      const seen = gpus > 0 ? `${gpus} GPU${gpus === 1 ? "" : "s"} visible` : "GPUs visible";
      return { ok: true, detail: `${seen} inside containers (${image})` };
    }
    const why = exit.error ?? firstLine(output);
    return { ok: false, detail: `nvidia-smi in the GPU probe container (${image}) exited with code ${exit.exitCode}${why === "" ? "" : `: ${why}`}` };
  } finally {
    await runtime.removeContainer(id, { force: true }).catch(() => undefined);
  }
}

export interface DockerGpuInputs {
  target: DockerTarget;
  host: HostProbe;
  /** The probe image (has nvidia-smi once the toolkit mounts the driver in). */
  image: string;
  timeoutMs: number;
  docker: Promise<DockerOutcome>;
  /** The NVIDIA driver check: on a local engine, no usable GPU there means none for containers either. */
  driver: Promise<CheckOutcome>;
}

export async function checkDockerGpu(inputs: DockerGpuInputs): Promise<CheckOutcome> {
  const { target, host, image, timeoutMs } = inputs;
  if (!isImageRef(image)) return { ok: false, detail: `not an image reference: ${JSON.stringify(image)}` };
  const docker = await inputs.docker;
  if (!docker.ok || docker.info === undefined || target.runtime === undefined) return { ok: false, detail: "not run: Docker is not available" };
  const facts = await toolkitFacts(host, docker.info);
  if (target.local) {
    // Only for an engine on this host: a remote engine's GPUs and toolkit are not this host's.
    const driver = await inputs.driver;
    const causes: string[] = [];
    if (!driver.ok) causes.push(`no usable NVIDIA GPU on this host (${driver.detail})`);
    if (!hasToolkit(facts)) {
      causes.push(`the NVIDIA container toolkit is not installed (no nvidia runtime in docker info, none of ${TOOLKIT_TOOLS.join(", ")} on PATH, no CDI spec in ${CDI_DIRS.join(" or ")})`);
    }
    if (causes.length > 0) {
      const hint = hasToolkit(facts) ? "" : `; ${TOOLKIT_HINT}`;
      return { ok: false, detail: `${causes.join("; ")}${hint}` };
    }
  }
  const started = Date.now();
  const missing = await ensureProbeImage(target.runtime, image, timeoutMs);
  if (missing !== undefined) return missing;
  // Whatever the pull left, but not so little that a container cannot even start.
  const left = Math.max(Math.min(1000, timeoutMs), timeoutMs - (Date.now() - started));
  return proveGpuAccess(target.runtime, image, left, facts);
}
