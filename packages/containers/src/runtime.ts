/**
 * The container runtime seam: the few things the agent asks of a container
 * engine, in the agent's own terms. The runner, the CLI and preflight use
 * this interface; only docker-runtime.ts knows the Docker Engine API.
 */
import type { Readable } from "node:stream";

import { KittError } from "@kitt/protocol";

/** A bind mount: `source` on the host at `target` in the container. */
export interface BindMount {
  source: string;
  target: string;
  readOnly: boolean;
}

export interface PortBinding {
  hostPort: number;
  containerPort: number;
  protocol?: "tcp" | "udp";
}

export interface ContainerSpec {
  /** Container name (unique on the engine). */
  name: string;
  image: string;
  /** Replaces the image's entry point (`["kitt"]`). */
  entrypoint?: string[];
  /** Arguments after the entry point. */
  cmd: string[];
  env?: Record<string, string>;
  labels: Record<string, string>;
  mounts?: BindMount[];
  /** `host` for benchmarks (engines they start listen on the host). Default: the engine's default network. */
  networkMode?: string;
  ports?: PortBinding[];
  /** Every NVIDIA GPU of the host through the engine's device requests (the NVIDIA container toolkit). */
  gpus?: boolean;
  workingDir?: string;
  /** Bytes of /dev/shm (vLLM wants gigabytes). */
  shmSizeBytes?: number;
  ipcMode?: string;
  ulimits?: { name: string; soft: number; hard: number }[];
}

export type ContainerState = "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead" | "unknown";

export interface ContainerSummary {
  id: string;
  name: string;
  image: string;
  state: ContainerState;
  labels: Record<string, string>;
}

export interface ImageInfo {
  id: string;
  repoTags: string[];
  /** Docker's names: `amd64`, `arm64`. */
  architecture: string;
  os: string;
  created?: string;
  sizeBytes?: number;
}

export interface EngineInfo {
  serverVersion: string;
  apiVersion: string;
  /** The engine's architecture in Docker's names (`amd64`, `arm64`). */
  architecture: string;
  os: string;
  /** Registered runtimes (`runc`, `nvidia`, ...). */
  runtimes: string[];
  defaultRuntime: string;
}

export type OutputStream = "stdout" | "stderr";

export interface FollowOptions {
  /** Each chunk as the engine sends it, already demultiplexed. Must not block. */
  onData: (chunk: Buffer, stream: OutputStream) => void;
  /** Stops following (the promise then resolves). */
  signal?: AbortSignal;
}

export interface ExitStatus {
  exitCode: number;
  /** The engine's own error (e.g. the entry point could not be started). */
  error?: string;
}

export interface BuildOptions {
  /** Every tag the image gets (`repo:tag`). */
  tags: string[];
  /** Path of the Dockerfile inside the context. */
  dockerfile?: string;
  noCache?: boolean;
  /** One human line at a time (`Step 3/9 : RUN ...`, build output). */
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

export interface PullOptions {
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

/** What the agent needs from a container engine. */
export interface ContainerRuntime {
  /** Engine identity; throws ContainerRuntimeUnavailableError when nothing answers. */
  info(): Promise<EngineInfo>;
  /** An image by reference or id; undefined when the engine does not have it. */
  inspectImage(ref: string): Promise<ImageInfo | undefined>;
  listImages(): Promise<ImageInfo[]>;
  pullImage(ref: string, options?: PullOptions): Promise<void>;
  /** Builds from a tar stream of the context; returns the image id. */
  buildImage(context: Readable, options: BuildOptions): Promise<string>;
  tagImage(ref: string, tag: string): Promise<void>;
  /** Creates (does not start) a container; returns its id. */
  createContainer(spec: ContainerSpec): Promise<string>;
  startContainer(id: string): Promise<void>;
  /** Follows stdout/stderr from the container's first byte until it exits (or `signal`). */
  followOutput(id: string, options: FollowOptions): Promise<void>;
  /**
   * Attaches to a created container's stdout and stderr before it starts;
   * resolves once attached, with `finished` settling when the output ends.
   * Faster than following the log (no log driver in the path) and nothing
   * is missed. Optional: a runtime without it is followed instead.
   */
  attachOutput?(id: string, options: FollowOptions): Promise<{ finished: Promise<void> }>;
  /** Resolves when the container has stopped. */
  waitContainer(id: string): Promise<ExitStatus>;
  /** SIGTERM (the image's stop signal), SIGKILL after `graceS`. A stopped or missing container is fine. */
  stopContainer(id: string, graceS: number): Promise<void>;
  /** A signal now (default SIGKILL). A stopped or missing container is fine. */
  killContainer(id: string, signal?: string): Promise<void>;
  /** Removes it (force kills a running one). A missing container is fine. */
  removeContainer(id: string, options?: { force?: boolean }): Promise<void>;
  inspectContainer(id: string): Promise<ContainerSummary | undefined>;
  /** Containers (running or not) carrying every one of these labels. */
  listContainers(labels: Record<string, string>): Promise<ContainerSummary[]>;
  /** Releases connections. */
  close(): void;
}

/** Nothing answers on the engine's socket (not installed, not running, no permission). */
export class ContainerRuntimeUnavailableError extends KittError {
  constructor(endpoint: string, detail: string, cause?: unknown) {
    super(`Docker is not available at ${endpoint}: ${detail}`, { code: "DOCKER_UNAVAILABLE", cause });
  }
}

/** The engine answered with an error. */
export class ContainerRuntimeError extends KittError {
  readonly statusCode: number | undefined;
  /** The engine's own message, whole (a failing OCI hook puts the useful part on a later line); the message keeps its first line. */
  readonly engineMessage: string | undefined;
  constructor(what: string, detail: string, statusCode?: number, cause?: unknown, engineMessage?: string) {
    super(`${what}: ${detail}`, { code: "DOCKER_ERROR", cause });
    this.statusCode = statusCode;
    this.engineMessage = engineMessage;
  }
}
