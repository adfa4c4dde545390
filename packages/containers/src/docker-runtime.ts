/**
 * ContainerRuntime over the Docker Engine API, through our own small client
 * (engine-client.ts) on node's HTTP client.
 */
import type { Readable } from "node:stream";

import { KittError } from "@kitt/protocol";

import { createBody, pullQuery, splitTag } from "./container-spec.js";
import { Demuxer } from "./demux.js";
import { dockerEndpoint, type DockerEndpoint } from "./docker-host.js";
import { containerPath, EngineClient, imagePath } from "./engine-client.js";
import { runtimeError, streamError } from "./engine-errors.js";
import { readJsonLines } from "./json-lines.js";
import {
  type BuildOptions,
  type ContainerRuntime,
  ContainerRuntimeError,
  type ContainerSpec,
  type ContainerState,
  type ContainerSummary,
  type EngineInfo,
  type ExitStatus,
  type FollowOptions,
  type ImageInfo,
  type PullOptions,
} from "./runtime.js";

export interface DockerRuntimeOptions {
  /** Where DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH are read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Bound on every short call (inspect, create, stop...) in ms (default 30 s). */
  callTimeoutMs?: number;
  /** A kept-alive socket to the engine idle this long is closed (default 10 s). */
  idleSocketMs?: number;
}

/** The fields of the engine's answers the runtime reads. */
interface ContainerInspect {
  Id: string;
  Name: string;
  Config: { Image: string; Labels?: Record<string, string> | null };
  State: { Status?: string };
}
interface ImageInspect {
  Id: string;
  RepoTags?: string[] | null;
  Architecture?: string;
  Os?: string;
  Created?: string;
  Size?: number;
}
interface ListedImage {
  Id: string;
  RepoTags?: string[] | null;
  Size?: number;
}
interface ListedContainer {
  Id: string;
  Names?: string[] | null;
  Image: string;
  State?: string;
  Labels?: Record<string, string> | null;
}

const short = (id: string): string => id.slice(0, 12);

export class DockerRuntime implements ContainerRuntime {
  readonly endpoint: DockerEndpoint;
  private readonly callTimeoutMs: number;
  private readonly env: NodeJS.ProcessEnv;
  private readonly idleSocketMs: number | undefined;
  private engine: EngineClient | undefined;

  constructor(options: DockerRuntimeOptions = {}) {
    this.env = options.env ?? process.env;
    this.endpoint = dockerEndpoint(this.env);
    this.callTimeoutMs = options.callTimeoutMs ?? 30_000;
    this.idleSocketMs = options.idleSocketMs;
  }

  /** Made on first use: a TLS endpoint reads its certificates then. */
  private client(): EngineClient {
    this.engine ??= new EngineClient(this.endpoint, { env: this.env, ...(this.idleSocketMs !== undefined ? { idleSocketMs: this.idleSocketMs } : {}) });
    return this.engine;
  }

  private wrap(what: string, err: unknown): Error {
    return runtimeError(this.endpoint, what, err, this.callTimeoutMs);
  }

  /** Why a long call ended: the caller's own abort reason as it gave it, else ours. */
  private failure(what: string, err: unknown, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted === true) return signal.reason instanceof Error ? signal.reason : new KittError(`${what} aborted`, { code: "ABORTED", cause: err });
    return this.wrap(what, err);
  }

  /** A short call, bounded by the call timeout. */
  private async call<T>(what: string, fn: (client: EngineClient, signal: AbortSignal) => Promise<T>, timeoutMs = this.callTimeoutMs): Promise<T> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(Object.assign(new Error("timeout"), { code: "TIMEOUT" })), timeoutMs);
    try {
      return await fn(this.client(), controller.signal);
    } catch (err) {
      throw this.wrap(what, controller.signal.aborted ? controller.signal.reason : err);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs `fn`; a 404 from the engine becomes `missing`, and so do the other statuses in `harmless`. */
  private async orMissing<T, F>(what: string, fn: (client: EngineClient, signal: AbortSignal) => Promise<T>, missing: F, harmless: (err: ContainerRuntimeError) => boolean = () => false, timeoutMs?: number): Promise<T | F> {
    try {
      return await this.call(what, fn, timeoutMs);
    } catch (err) {
      if (err instanceof ContainerRuntimeError && (err.statusCode === 404 || harmless(err))) return missing;
      throw err;
    }
  }

  /** A long call (a stream, a wait): no bound but the caller's signal. */
  private async open<T>(what: string, fn: (client: EngineClient) => Promise<T>, signal?: AbortSignal): Promise<T> {
    try {
      return await fn(this.client());
    } catch (err) {
      throw this.failure(what, err, signal);
    }
  }

  async info(): Promise<EngineInfo> {
    return this.call("docker info", async (client, signal) => {
      const [info, version] = await Promise.all([
        client.json<Record<string, unknown>>("GET", "/info", { signal }),
        client.json<Record<string, unknown>>("GET", "/version", { signal }),
      ]);
      const runtimes = info.Runtimes !== null && typeof info.Runtimes === "object" ? Object.keys(info.Runtimes) : [];
      return {
        serverVersion: String(version.Version ?? info.ServerVersion ?? ""),
        apiVersion: String(version.ApiVersion ?? ""),
        architecture: String(version.Arch ?? ""),
        os: String(version.Os ?? info.OSType ?? ""),
        runtimes,
        defaultRuntime: String(info.DefaultRuntime ?? ""),
      };
    });
  }

  async inspectImage(ref: string): Promise<ImageInfo | undefined> {
    const toInfo = (img: ImageInspect): ImageInfo => ({ id: img.Id, repoTags: img.RepoTags ?? [], architecture: img.Architecture ?? "", os: img.Os ?? "", created: img.Created, sizeBytes: img.Size });
    return this.orMissing(`inspect image ${ref}`, async (client, signal) => toInfo(await client.json<ImageInspect>("GET", `${imagePath(ref)}/json`, { signal })), undefined);
  }

  async listImages(): Promise<ImageInfo[]> {
    return this.call("list images", async (client, signal) => {
      const list = await client.json<ListedImage[]>("GET", "/images/json", { signal });
      // The list does not say the architecture; inspectImage() does.
      return list.map((img) => ({ id: img.Id, repoTags: (img.RepoTags ?? []).filter((t) => t !== "<none>:<none>"), architecture: "", os: "", sizeBytes: img.Size }));
    });
  }

  async pullImage(ref: string, options: PullOptions = {}): Promise<void> {
    const what = `pull ${ref}`;
    const stream = await this.open(what, (client) => client.stream("POST", "/images/create", { query: pullQuery(ref), signal: options.signal }), options.signal);
    await readJsonLines(stream, (msg) => {
      const failed = streamError(what, msg);
      if (failed !== undefined) throw failed;
      if (typeof msg.status === "string" && options.onProgress !== undefined) {
        const id = typeof msg.id === "string" ? `${msg.id}: ` : "";
        // Byte-level progress lines come many times a second; only the state changes are worth a line.
        if (msg.progressDetail === undefined || Object.keys(msg.progressDetail as object).length === 0) options.onProgress(`${id}${msg.status}`);
      }
    }, options.signal).catch((err: unknown) => {
      throw this.failure(what, err, options.signal);
    });
  }

  async buildImage(context: Readable, options: BuildOptions): Promise<string> {
    const [first, ...rest] = options.tags;
    // Intermediate containers removed, also after a failed step (rm, forcerm).
    const query = { t: first, dockerfile: options.dockerfile ?? "Dockerfile", nocache: options.noCache === true, rm: true, forcerm: true };
    const stream = await this.open("docker build", (client) => client.stream("POST", "/build", { query, body: context, headers: { "content-type": "application/x-tar" }, signal: options.signal }), options.signal);
    let imageId: string | undefined;
    let partial = "";
    await readJsonLines(stream, (msg) => {
      const failed = streamError("docker build", msg);
      if (failed !== undefined) throw failed;
      const aux = msg.aux as { ID?: unknown } | undefined;
      if (aux !== undefined && typeof aux.ID === "string") imageId = aux.ID;
      if (typeof msg.stream === "string" && options.onProgress !== undefined) {
        const lines = (partial + msg.stream).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) if (line.trim() !== "") options.onProgress(line.trimEnd());
      }
      if (typeof msg.status === "string" && options.onProgress !== undefined) options.onProgress(msg.status);
    }, options.signal).catch((err: unknown) => {
      throw this.failure("docker build", err, options.signal);
    });
    if (partial.trim() !== "") options.onProgress?.(partial.trimEnd());
    if (imageId === undefined && first !== undefined) imageId = (await this.inspectImage(first))?.id;
    if (imageId === undefined) throw new ContainerRuntimeError("docker build", "the engine reported no image id");
    for (const tag of rest) await this.tagImage(imageId, tag);
    return imageId;
  }

  async tagImage(ref: string, tag: string): Promise<void> {
    await this.call(`tag ${ref} as ${tag}`, (client, signal) => client.json("POST", `${imagePath(ref)}/tag`, { query: splitTag(tag), signal }));
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    const created = await this.call(`create container ${spec.name}`, (client, signal) =>
      client.json<{ Id: string }>("POST", "/containers/create", { query: { name: spec.name }, json: createBody(spec), signal }),
    );
    return created.Id;
  }

  async startContainer(id: string): Promise<void> {
    await this.call(`start container ${short(id)}`, (client, signal) => client.json("POST", `${containerPath(id)}/start`, { signal }));
  }

  async followOutput(id: string, options: FollowOptions): Promise<void> {
    const query = { follow: true, stdout: true, stderr: true, timestamps: false };
    const stream = await this.open(`logs of ${short(id)}`, (client) => client.stream("GET", `${containerPath(id)}/logs`, { query }));
    await pump(stream, options);
  }

  async attachOutput(id: string, options: FollowOptions): Promise<{ finished: Promise<void> }> {
    // Before start: the engine wires the container's pipes to this stream before it answers, so every
    // byte comes through. Not `logs`: its replay of the log would repeat what the pipes already carry.
    const query = { stream: true, logs: false, stdout: true, stderr: true };
    const stream = await this.open(`attach to ${short(id)}`, (client) => client.hijack(`${containerPath(id)}/attach`, { query }));
    return { finished: pump(stream, options) };
  }

  async waitContainer(id: string): Promise<ExitStatus> {
    const res = await this.open(`wait for ${short(id)}`, (client) => client.json<{ StatusCode?: number; Error?: { Message?: string } | null }>("POST", `${containerPath(id)}/wait`));
    const error = res.Error?.Message;
    return { exitCode: typeof res.StatusCode === "number" ? res.StatusCode : -1, ...(error !== undefined && error !== "" ? { error } : {}) };
  }

  async stopContainer(id: string, graceS: number): Promise<void> {
    const t = Math.max(0, Math.round(graceS));
    // 304: already stopped. The engine itself waits up to `t` seconds before SIGKILL: the bound allows for that.
    await this.orMissing(`stop container ${short(id)}`, (client, signal) => client.json("POST", `${containerPath(id)}/stop`, { query: { t }, signal }), undefined, (err) => err.statusCode === 304, this.callTimeoutMs + t * 1000);
  }

  async killContainer(id: string, signal = "SIGKILL"): Promise<void> {
    // 409: not running.
    await this.orMissing(`kill container ${short(id)}`, (client, abort) => client.json("POST", `${containerPath(id)}/kill`, { query: { signal }, signal: abort }), undefined, (err) => err.statusCode === 409);
  }

  async removeContainer(id: string, options: { force?: boolean } = {}): Promise<void> {
    const query = { force: options.force === true, v: true };
    // 409 "already in progress": the engine is removing it.
    const inProgress = (err: ContainerRuntimeError): boolean => err.statusCode === 409 && /already in progress/.test(err.message);
    await this.orMissing(`remove container ${short(id)}`, (client, signal) => client.json("DELETE", containerPath(id), { query, signal }), undefined, inProgress);
  }

  async inspectContainer(id: string): Promise<ContainerSummary | undefined> {
    return this.orMissing(
      `inspect container ${short(id)}`,
      async (client, signal) => {
        const c = await client.json<ContainerInspect>("GET", `${containerPath(id)}/json`, { signal });
        return { id: c.Id, name: c.Name.replace(/^\//, ""), image: c.Config.Image, state: toState(c.State.Status), labels: c.Config.Labels ?? {} };
      },
      undefined,
    );
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerSummary[]> {
    // Stopped ones too (all=1): the crash sweep removes what a dead run left.
    const filters = JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) });
    return this.call("list containers", async (client, signal) => {
      const list = await client.json<ListedContainer[]>("GET", "/containers/json", { query: { all: true, filters }, signal });
      return list.map((c) => ({ id: c.Id, name: (c.Names?.[0] ?? "").replace(/^\//, ""), image: c.Image, state: toState(c.State), labels: c.Labels ?? {} }));
    });
  }

  /** The Engine API version spoken (`1.41`; "" for the engine's own), once a call has been made. */
  get apiVersion(): string | undefined {
    return this.engine?.apiVersion;
  }

  close(): void {
    // Kept-alive sockets to the engine go; a later call opens new ones.
    this.engine?.close();
    this.engine = undefined;
  }

  get callTimeout(): number {
    return this.callTimeoutMs;
  }
}

function toState(raw: string | undefined): ContainerState {
  const known: ContainerState[] = ["created", "running", "paused", "restarting", "removing", "exited", "dead"];
  return known.includes(raw as ContainerState) ? (raw as ContainerState) : "unknown";
}

/** Demultiplexes `stream` into `options.onData` until it ends, fails or `options.signal` aborts. */
function pump(stream: Readable, options: FollowOptions): Promise<void> {
  const demux = new Demuxer(options.onData);
  return new Promise<void>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      options.signal?.removeEventListener("abort", onAbort);
      demux.end();
      resolve();
    };
    const onAbort = () => {
      stream.destroy();
      finish();
    };
    if (options.signal?.aborted === true) return onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    stream.on("data", (chunk: Buffer) => demux.push(chunk));
    stream.once("end", finish);
    stream.once("close", finish);
    stream.once("error", finish);
  });
}
