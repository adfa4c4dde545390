/**
 * The container commands of the original agent's API (section 5 of the
 * protocol notes): `run_container` (async), `stop_container` and
 * `check_docker` (answered at once). Payloads are checked field by field;
 * the docker-CLI style `extra_args` are read into engine options from a
 * short allow list, and the privileged ones are refused by name.
 */
import { isImageRef, isSafeId } from "@kitt/protocol";

export interface RunContainerSpec {
  kind: "run_container";
  commandId: string;
  testId: string;
  image: string;
  /** Container name (default `kitt-svc-<first 8 of the command id>`). */
  name: string;
  port: number | undefined;
  containerPort: number | undefined;
  /** Asked for GPUs (payload `gpu`, default true; `--gpus all` in extra_args too). */
  gpu: boolean;
  volumes: { host: string; container: string }[];
  env: Record<string, string>;
  commandArgs: string[];
  networkMode: string | undefined;
  shmSizeBytes: number | undefined;
  ipcMode: string | undefined;
  ulimits: { name: string; soft: number; hard: number }[];
  healthUrl: string | undefined;
  healthTimeoutS: number;
}

export interface StopContainerSpec {
  kind: "stop_container";
  commandId: string;
  testId: string;
  /** The run_container command whose container is stopped. */
  target: string;
}

export interface CheckDockerSpec {
  kind: "check_docker";
  commandId: string;
  testId: string;
}

export type ContainerCommandSpec = RunContainerSpec | StopContainerSpec | CheckDockerSpec;

export const CONTAINER_COMMAND_TYPES = ["run_container", "stop_container", "check_docker"] as const;

/** Refused in extra_args, as by the original agent: each one hands the container the host. */
export const PRIVILEGED_OPTIONS = ["--privileged", "--pid", "--cap-add", "--security-opt", "--device"] as const;
const ALSO_REFUSED = ["--userns", "--cgroupns", "--uts", "--volumes-from", "--mount", "-v", "--volume", "--user", "-u", "--cgroup-parent", "--runtime", "--init-path"];

export const DEFAULT_HEALTH_TIMEOUT_S = 300;
const MAX_LIST = 256;
const MAX_ARG = 4096;

export class CommandRefused extends Error {}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function refuse(field: string, what: string, value: unknown): never {
  throw new CommandRefused(`${field} must be ${what}, got ${show(value)}`);
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function text(field: string, value: unknown, max = MAX_ARG): string {
  if (typeof value !== "string" || value.length > max || CONTROL.test(value)) refuse(field, `a string of at most ${max} characters without control characters`, value);
  return value;
}

function port(field: string, value: unknown): number | undefined {
  if (value === undefined || value === null || value === 0 || value === "") return undefined;
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) refuse(field, "a port 1-65535", value);
  return n;
}

function bool(field: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean") refuse(field, "true or false", value);
  return value;
}

function hostPath(field: string, value: unknown): string {
  const p = text(field, value);
  if (!p.startsWith("/") || p.split("/").includes("..")) refuse(field, "an absolute path without '..'", value);
  if (p.replace(/\/+$/, "") === "") refuse(field, "a directory below / (the host's root is not mounted)", value);
  return p;
}

/** `16g`, `512m`, `1073741824` -> bytes. */
export function parseSize(value: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([bkmg]?)b?$/i.exec(value.trim());
  if (m === null) return undefined;
  const unit = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? "").toLowerCase()] ?? 1;
  const bytes = Math.round(Number(m[1]) * unit);
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

interface ExtraOptions {
  gpu: boolean | undefined;
  networkMode: string | undefined;
  shmSizeBytes: number | undefined;
  ipcMode: string | undefined;
  ulimits: { name: string; soft: number; hard: number }[];
  env: Record<string, string>;
}

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** Reads docker-run style options from the allow list; anything else is refused with its name. */
export function parseExtraArgs(value: unknown): ExtraOptions {
  const out: ExtraOptions = { gpu: undefined, networkMode: undefined, shmSizeBytes: undefined, ipcMode: undefined, ulimits: [], env: {} };
  if (value === undefined || value === null) return out;
  if (!Array.isArray(value) || value.length > MAX_LIST) refuse("payload.extra_args", `a list of at most ${MAX_LIST} strings`, value);
  const args = value.map((v, i) => text(`payload.extra_args[${i}]`, v));
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") && eq !== -1 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith("--") && eq !== -1 ? arg.slice(eq + 1) : undefined;
    if ((PRIVILEGED_OPTIONS as readonly string[]).includes(name)) throw new CommandRefused(`privileged option refused: ${name}`);
    if (ALSO_REFUSED.includes(name)) throw new CommandRefused(`option refused: ${name} (mounts come from payload.volumes; the agent decides user and runtime)`);
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      const next = args[i + 1];
      if (next === undefined) throw new CommandRefused(`payload.extra_args: ${name} needs a value`);
      i++;
      return next;
    };
    switch (name) {
      case "--rm":
      case "-d":
      case "--detach":
        break; // the agent always runs detached and removes the container itself
      case "--gpus": {
        const v = takeValue();
        if (v !== "all") throw new CommandRefused(`payload.extra_args: only --gpus all is supported, got ${show(v)}`);
        out.gpu = true;
        break;
      }
      case "--network":
      case "--net": {
        const v = takeValue();
        if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(v) || v.startsWith("container")) throw new CommandRefused(`payload.extra_args: ${name} must name a network, got ${show(v)}`);
        out.networkMode = v;
        break;
      }
      case "--ipc": {
        const v = takeValue();
        if (!["host", "private", "shareable", "none"].includes(v)) throw new CommandRefused(`payload.extra_args: --ipc must be host, private, shareable or none, got ${show(v)}`);
        out.ipcMode = v;
        break;
      }
      case "--shm-size": {
        const v = takeValue();
        const bytes = parseSize(v);
        if (bytes === undefined) throw new CommandRefused(`payload.extra_args: --shm-size must be a size like 16g, got ${show(v)}`);
        out.shmSizeBytes = bytes;
        break;
      }
      case "--ulimit": {
        const v = takeValue();
        const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(v);
        if (m === null) throw new CommandRefused(`payload.extra_args: --ulimit must be name=soft[:hard], got ${show(v)}`);
        out.ulimits.push({ name: m[1] as string, soft: Number(m[2]), hard: Number(m[3] ?? m[2]) });
        break;
      }
      case "-e":
      case "--env": {
        const v = takeValue();
        const at = v.indexOf("=");
        if (at < 1 || !ENV_KEY.test(v.slice(0, at))) throw new CommandRefused(`payload.extra_args: ${name} must be KEY=value, got ${show(v)}`);
        out.env[v.slice(0, at)] = v.slice(at + 1);
        break;
      }
      default:
        throw new CommandRefused(`payload.extra_args: unsupported option ${show(name)} (supported: --gpus all, --network, --ipc, --shm-size, --ulimit, -e/--env, --rm)`);
    }
  }
  return out;
}

function record(field: string, value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) refuse(field, "an object", value);
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_LIST) refuse(field, `an object of at most ${MAX_LIST} entries`, "...");
  return value as Record<string, unknown>;
}

function healthUrl(value: unknown): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const raw = text("payload.health_url", value, 2048);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return refuse("payload.health_url", "an http(s) URL", value);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") refuse("payload.health_url", "an http(s) URL", value);
  return url.toString();
}

/** Checks a run_container payload; throws CommandRefused naming the field. */
export function checkRunContainer(commandId: string, testId: string, payload: Record<string, unknown>): RunContainerSpec {
  const image = text("payload.image", payload.image, 255);
  if (!isImageRef(image)) refuse("payload.image", "a Docker image reference", payload.image);
  const name = payload.name === undefined || payload.name === null || payload.name === "" ? `kitt-svc-${commandId.slice(0, 8)}` : text("payload.name", payload.name, 128);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name)) refuse("payload.name", "a container name (letters, digits, '_', '.', '-')", payload.name);
  const extra = parseExtraArgs(payload.extra_args);
  const volumes = Object.entries(record("payload.volumes", payload.volumes)).map(([host, container]) => ({
    host: hostPath(`payload.volumes key`, host),
    container: hostPath(`payload.volumes[${show(host)}]`, container),
  }));
  const env: Record<string, string> = { ...extra.env };
  for (const [key, value] of Object.entries(record("payload.env", payload.env))) {
    if (!ENV_KEY.test(key)) refuse("payload.env key", "a variable name", key);
    env[key] = text(`payload.env.${key}`, typeof value === "number" || typeof value === "boolean" ? String(value) : value);
  }
  const commandArgs = payload.command_args === undefined || payload.command_args === null ? [] : payload.command_args;
  if (!Array.isArray(commandArgs) || commandArgs.length > MAX_LIST) refuse("payload.command_args", `a list of at most ${MAX_LIST} strings`, commandArgs);
  let healthTimeoutS = DEFAULT_HEALTH_TIMEOUT_S;
  if (payload.health_timeout_s !== undefined && payload.health_timeout_s !== null) {
    const n = payload.health_timeout_s;
    if (typeof n !== "number" || !Number.isFinite(n) || n <= 0 || n > 3600) refuse("payload.health_timeout_s", "seconds 1-3600", n);
    healthTimeoutS = n;
  }
  return {
    kind: "run_container",
    commandId,
    testId,
    image,
    name,
    port: port("payload.port", payload.port),
    containerPort: port("payload.container_port", payload.container_port),
    gpu: extra.gpu ?? bool("payload.gpu", payload.gpu, true),
    volumes,
    env,
    commandArgs: (commandArgs as unknown[]).map((a, i) => text(`payload.command_args[${i}]`, a)),
    networkMode: extra.networkMode,
    shmSizeBytes: extra.shmSizeBytes,
    ipcMode: extra.ipcMode,
    ulimits: extra.ulimits,
    healthUrl: healthUrl(payload.health_url),
    healthTimeoutS,
  };
}

/** stop_container: `payload.command_id` names the run_container command. */
export function checkStopContainer(commandId: string, testId: string, payload: Record<string, unknown>): StopContainerSpec {
  const target = payload.command_id;
  if (!isSafeId(target)) refuse("payload.command_id", "the command id of a run_container command", target);
  return { kind: "stop_container", commandId, testId, target };
}
