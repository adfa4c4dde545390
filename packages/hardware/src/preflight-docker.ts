/**
 * The Docker checks ask the engine itself through the Engine API
 * (ContainerRuntime), not the docker CLI: the agent runs benchmarks through
 * that API, so that is what must work, and its errors say why (no socket,
 * permission, refused) instead of a CLI's first stderr line.
 */
import {
  chooseKittImage,
  type ContainerRuntime,
  ContainerRuntimeError,
  ContainerRuntimeUnavailableError,
  dockerArch,
  dockerEndpoint,
  DockerRuntime,
  type EngineInfo,
} from "@kitt/containers";
import { isImageRef } from "@kitt/protocol";

import type { HostProbe } from "./host.js";
import type { CheckOutcome } from "./preflight-types.js";

/** The engine the checks talk to, or why there is none to talk to. */
export interface DockerTarget {
  runtime: ContainerRuntime | undefined;
  /** `unix:///var/run/docker.sock`, `tcp://gpu-01:2375`. */
  endpoint: string;
  /** The engine runs on this host (a unix socket): host facts (driver, toolkit) then apply to it. */
  local: boolean;
  /** Set when DOCKER_HOST cannot be used at all. */
  error?: string;
}

/** What the Docker check learned, for the checks that build on it. */
export interface DockerOutcome extends CheckOutcome {
  info?: EngineInfo;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The endpoint comes from the host's DOCKER_HOST (the same variable the
 * production runtime reads), so an injected runtime is described by the
 * environment it was made for.
 */
export function dockerTarget(host: HostProbe, injected: ContainerRuntime | undefined, callTimeoutMs: number): DockerTarget {
  let endpoint: ReturnType<typeof dockerEndpoint>;
  try {
    endpoint = dockerEndpoint(host.env);
  } catch (error) {
    const raw = host.env.DOCKER_HOST ?? "";
    return injected !== undefined
      ? { runtime: injected, endpoint: raw, local: false }
      : { runtime: undefined, endpoint: raw, local: false, error: message(error) };
  }
  const runtime = injected ?? new DockerRuntime({ env: host.env, callTimeoutMs });
  return { runtime, endpoint: endpoint.display, local: endpoint.kind === "unix" };
}

/**
 * The engine's own words, on one line. The runtime's error message keeps
 * only the first line of what the engine said; `engineMessage` has all of
 * it, and a failing OCI hook puts the useful part (`nvidia-container-cli: ...`)
 * on a later line.
 */
export function engineErrorText(error: unknown): string {
  const text = error instanceof ContainerRuntimeError && error.engineMessage !== undefined ? error.engineMessage : message(error);
  const oneLine = text.split("\n").map((l) => l.trim()).filter((l) => l !== "").join(" ");
  return oneLine.length > 400 ? `${oneLine.slice(0, 399)}…` : oneLine;
}

export async function checkDocker(target: DockerTarget): Promise<DockerOutcome> {
  if (target.runtime === undefined) return { ok: false, detail: target.error ?? "no Docker endpoint" };
  try {
    const info = await target.runtime.info();
    const platform = [info.os, info.architecture].filter((p) => p !== "").join("/");
    const facts = [info.apiVersion === "" ? "" : `API ${info.apiVersion}`, platform].filter((f) => f !== "").join(", ");
    const version = info.serverVersion === "" ? "the Docker engine answers" : `Docker server ${info.serverVersion}`;
    return { ok: true, detail: `${version}${facts === "" ? "" : ` (${facts})`} at ${target.endpoint}`, info };
  } catch (error) {
    // The runtime's own message names the endpoint and the cause (no socket, permission, refused).
    if (error instanceof ContainerRuntimeUnavailableError) return { ok: false, detail: error.message };
    return { ok: false, detail: `the engine at ${target.endpoint} answered with an error: ${engineErrorText(error)}` };
  }
}

/** `kitt_image` as given: undefined or empty means none; anything else must be an image reference. */
export function validKittImage(value: unknown): { ok: true; image: string | undefined } | { ok: false; detail: string } {
  if (value === undefined || value === null) return { ok: true, image: undefined };
  if (typeof value !== "string") return { ok: false, detail: `kitt_image must be a string, got ${typeof value}` };
  const image = value.trim();
  if (image === "") return { ok: true, image: undefined };
  return isImageRef(image) ? { ok: true, image } : { ok: false, detail: `kitt_image is not an image reference: ${JSON.stringify(value)}` };
}

const NO_IMAGE = "no KITT image: run kitt-agent build (or install the kitt CLI on the host)";

/**
 * Which image a benchmark would run in, with the same choice the runner
 * makes (`chooseKittImage`): the configured image, else kitt:latest, only
 * when present locally and built for this host's architecture.
 */
export async function checkKittImage(
  target: DockerTarget,
  docker: Promise<DockerOutcome>,
  kittImage: unknown,
  hostMachine: string,
): Promise<CheckOutcome> {
  const configured = validKittImage(kittImage);
  if (!configured.ok) return { ok: false, detail: configured.detail };
  if (!(await docker).ok || target.runtime === undefined) return { ok: false, detail: "not run: Docker is not available" };
  const hostArch = dockerArch(hostMachine);
  const choice = await chooseKittImage(target.runtime, { kittImage: configured.image, hostArch });
  const skipped = choice.skipped.length === 0 ? "" : `; skipped: ${choice.skipped.join("; ")}`;
  if (choice.ref === undefined || choice.image === undefined) {
    return { ok: false, detail: `${NO_IMAGE}${skipped === "" ? "" : `; ${choice.skipped.join("; ")}`}` };
  }
  const image = choice.image;
  const platform = [image.os, image.architecture || hostArch].filter((p) => p !== "").join("/");
  const id = image.id.replace(/^sha256:/, "").slice(0, 12);
  return { ok: true, detail: `${choice.ref} (${platform}${id === "" ? "" : `, image ${id}`})${skipped}` };
}
