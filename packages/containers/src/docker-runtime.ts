/**
 * ContainerRuntime over the Docker Engine API, through our own small client
 * (engine-client.ts) on node's HTTP client.
 */
import type { Readable } from "node:stream";

import { Demuxer } from "./demux.js";
import { dockerEndpoint, type DockerEndpoint } from "./docker-host.js";
import { EngineClient } from "./engine-client.js";
import { readJsonLines } from "./json-lines.js";
import {
  type BuildOptions,
  type ContainerRuntime,
  ContainerRuntimeError,
  ContainerRuntimeUnavailableError,
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
  /** Where DOCKER_HOST is read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Bound on every short call (inspect, create, stop...) in ms (default 30 s). */
  callTimeoutMs?: number;
}

const CONNECTION_CODES = new Set(["ECONNREFUSED", "ENOENT", "EACCES", "EPERM", "ECONNRESET", "EHOSTUNREACH", "ETIMEDOUT", "ENOTFOUND", "EPIPE"]);

interface EngineErrorShape {
  code?: string;
  statusCode?: number;
  reason?: string;
  json?: { message?: string } | null;
  message?: string;
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
interface ImageListItem {
  Id: string;
  RepoTags?: string[] | null;
  Size?: number;
}
interface ContainerListItem {
  Id: string;
  Names?: string[] | null;
  Image: string;
  State?: string;
  Labels?: Record<string, string> | null;
}

interface ContainerHandle {
  start(options?: { abortSignal?: AbortSignal }): Promise<unknown>;
  stop(options: { t: number; abortSignal?: AbortSignal }): Promise<unknown>;
  kill(options: { signal: string; abortSignal?: AbortSignal }): Promise<unknown>;
  remove(options: { force: boolean; v: boolean; abortSignal?: AbortSignal }): Promise<unknown>;
  wait(): Promise<{ StatusCode?: number; Error?: { Message?: string } | null }>;
  inspect(options?: { abortSignal?: AbortSignal }): Promise<ContainerInspect>;
  logs(): Promise<Readable>;
  attach(): Promise<Readable>;
}

interface DockerApi {
  info(options?: { abortSignal?: AbortSignal }): Promise<Record<string, unknown>>;
  version(options?: { abortSignal?: AbortSignal }): Promise<Record<string, unknown>>;
  getImage(ref: string): { inspect(options?: { abortSignal?: AbortSignal }): Promise<ImageInspect>; tag(options: { repo: string; tag: string; abortSignal?: AbortSignal }): Promise<unknown> };
  listImages(options?: { abortSignal?: AbortSignal }): Promise<ImageListItem[]>;
  pull(ref: string, options?: { abortSignal?: AbortSignal | undefined }): Promise<Readable>;
  buildImage(context: Readable, options: { t?: string; dockerfile: string; nocache: boolean; abortSignal?: AbortSignal | undefined }): Promise<Readable>;
  createContainer(options: object & { name: string; abortSignal?: AbortSignal }): Promise<{ id: string }>;
  getContainer(id: string): ContainerHandle;
  listContainers(options: { filters: Record<string, string[]>; abortSignal?: AbortSignal }): Promise<ContainerListItem[]>;
  close(): void;
}

/** The runtime's calls as Engine API requests. */
function engineApi(client: EngineClient): DockerApi {
  const c = (id: string) => `/containers/${encodeURIComponent(id)}`;
  const image = (name: string) => `/images/${client.refPath(name)}`;
  return {
    info: (o) => client.json("GET", "/info", { signal: o?.abortSignal }),
    version: (o) => client.json("GET", "/version", { signal: o?.abortSignal }),
    getImage: (name) => ({
      inspect: (o) => client.json("GET", `${image(name)}/json`, { signal: o?.abortSignal }),
      tag: (o) => client.json("POST", `${image(name)}/tag`, { query: { repo: o.repo, tag: o.tag }, signal: o.abortSignal }),
    }),
    listImages: (o) => client.json("GET", "/images/json", { signal: o?.abortSignal }),
    pull: (name, o) => {
      // As the docker CLI asks: the repository and one tag (never "every tag"), or a digest.
      const at = name.indexOf("@");
      const colon = name.lastIndexOf(":");
      const slash = name.lastIndexOf("/");
      const query = at !== -1 ? { fromImage: name } : colon > slash ? { fromImage: name.slice(0, colon), tag: name.slice(colon + 1) } : { fromImage: name, tag: "latest" };
      return client.stream("POST", "/images/create", { query, signal: o?.abortSignal });
    },
    // Intermediate containers removed, also after a failed step (rm, forcerm).
    buildImage: (context, o) =>
      client.stream("POST", "/build", {
        query: { t: o.t, dockerfile: o.dockerfile, nocache: o.nocache, rm: true, forcerm: true },
        body: context,
        headers: { "content-type": "application/x-tar" },
        signal: o.abortSignal,
      }),
    createContainer: async ({ name, abortSignal, ...body }) => {
      const created = await client.json<{ Id: string }>("POST", "/containers/create", { query: { name }, json: body, signal: abortSignal });
      return { id: created.Id };
    },
    getContainer: (id) => ({
      start: (o) => client.json("POST", `${c(id)}/start`, { signal: o?.abortSignal }),
      stop: (o) => client.json("POST", `${c(id)}/stop`, { query: { t: o.t }, signal: o.abortSignal }),
      kill: (o) => client.json("POST", `${c(id)}/kill`, { query: { signal: o.signal }, signal: o.abortSignal }),
      remove: (o) => client.json("DELETE", c(id), { query: { force: o.force, v: o.v }, signal: o.abortSignal }),
      wait: () => client.json("POST", `${c(id)}/wait`),
      inspect: (o) => client.json("GET", `${c(id)}/json`, { signal: o?.abortSignal }),
      logs: () => client.stream("GET", `${c(id)}/logs`, { query: { follow: true, stdout: true, stderr: true, timestamps: false } }),
      // A plain request: the engine answers 200 once the container's pipes are wired to it, then streams until they close.
      attach: () => client.stream("POST", `${c(id)}/attach`, { query: { stream: true, logs: false, stdout: true, stderr: true } }),
    }),
    // Stopped ones too (all=1): the crash sweep removes what a dead run left.
    listContainers: (o) => client.json("GET", "/containers/json", { query: { all: true, filters: JSON.stringify(o.filters) }, signal: o.abortSignal }),
    close: () => client.close(),
  };
}

function engineMessage(err: EngineErrorShape): string {
  const fromJson = err.json !== null && typeof err.json === "object" ? err.json.message : undefined;
  // Streaming calls (pull, build, attach, logs) carry the engine's message only in the error text:
  // "(HTTP code 500) server error - <the engine's message> ".
  const fromText = typeof err.message === "string" ? /^\(HTTP code \d+\) [^-]*- ([\s\S]*\S)\s*$/.exec(err.message)?.[1] : undefined;
  const text = fromJson ?? fromText ?? err.reason ?? err.message ?? String(err);
  return String(text).split("\n")[0]?.trim() ?? "";
}

export class DockerRuntime implements ContainerRuntime {
  readonly endpoint: DockerEndpoint;
  private readonly callTimeoutMs: number;
  private readonly env: NodeJS.ProcessEnv;
  private api: DockerApi | undefined;

  constructor(options: DockerRuntimeOptions = {}) {
    this.env = options.env ?? process.env;
    this.endpoint = dockerEndpoint(this.env);
    this.callTimeoutMs = options.callTimeoutMs ?? 30_000;
  }

  private docker(): Promise<DockerApi> {
    this.api ??= engineApi(new EngineClient(this.endpoint, this.env));
    return Promise.resolve(this.api);
  }

  /** Maps the client's errors to ours: unreachable engine vs an answer with an error. */
  private wrap(what: string, err: unknown): Error {
    const e = (err ?? {}) as EngineErrorShape;
    if (e.code !== undefined && CONNECTION_CODES.has(e.code)) {
      const detail = e.code === "ENOENT" ? "no socket (is the Docker engine installed and running?)" : e.code === "EACCES" || e.code === "EPERM" ? "permission denied on the socket (add the agent's user to the docker group)" : e.code === "ECONNREFUSED" ? "connection refused (is the Docker engine running?)" : e.code;
      return new ContainerRuntimeUnavailableError(this.endpoint.display, detail, err);
    }
    if (e.code === "TIMEOUT") return new ContainerRuntimeUnavailableError(this.endpoint.display, `no answer to ${what} within ${this.callTimeoutMs} ms`, err);
    return new ContainerRuntimeError(what, engineMessage(e), e.statusCode, err);
  }

  private async call<T>(what: string, fn: (docker: DockerApi, signal: AbortSignal) => Promise<T>, timeoutMs = this.callTimeoutMs): Promise<T> {
    const docker = await this.docker();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(Object.assign(new Error("timeout"), { code: "TIMEOUT" })), timeoutMs);
    try {
      return await fn(docker, controller.signal);
    } catch (err) {
      if (controller.signal.aborted) throw this.wrap(what, controller.signal.reason);
      throw this.wrap(what, err);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs `fn`; a 404 from the engine becomes `undefined` (or the fallback). */
  private async orMissing<T, F>(what: string, fn: (docker: DockerApi, signal: AbortSignal) => Promise<T>, missing: F): Promise<T | F> {
    try {
      return await this.call(what, fn);
    } catch (err) {
      if (err instanceof ContainerRuntimeError && err.statusCode === 404) return missing;
      throw err;
    }
  }

  async info(): Promise<EngineInfo> {
    return this.call("docker info", async (docker, abortSignal) => {
      const [info, version] = await Promise.all([
        docker.info({ abortSignal }),
        docker.version({ abortSignal }),
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
    return this.orMissing(
      `inspect image ${ref}`,
      async (docker, abortSignal) => {
        const img = await docker.getImage(ref).inspect({ abortSignal });
        return {
          id: img.Id,
          repoTags: img.RepoTags ?? [],
          architecture: img.Architecture ?? "",
          os: img.Os ?? "",
          created: img.Created,
          sizeBytes: img.Size,
        };
      },
      undefined,
    );
  }

  async listImages(): Promise<ImageInfo[]> {
    return this.call("list images", async (docker, abortSignal) => {
      const list = await docker.listImages({ abortSignal });
      return list.map((img) => ({
        id: img.Id,
        repoTags: (img.RepoTags ?? []).filter((t) => t !== "<none>:<none>"),
        // The list does not say; inspectImage() does.
        architecture: "",
        os: "",
        sizeBytes: img.Size,
      }));
    });
  }

  async pullImage(ref: string, options: PullOptions = {}): Promise<void> {
    const docker = await this.docker();
    let stream: Readable;
    try {
      stream = await docker.pull(ref, { abortSignal: options.signal });
    } catch (err) {
      throw this.wrap(`pull ${ref}`, err);
    }
    await readJsonLines(stream, (msg) => {
      if (typeof msg.error === "string") throw new ContainerRuntimeError(`pull ${ref}`, msg.error);
      if (typeof msg.status === "string" && options.onProgress !== undefined) {
        const id = typeof msg.id === "string" ? `${msg.id}: ` : "";
        // Byte-level progress lines come many times a second; only the state changes are worth a line.
        if (msg.progressDetail === undefined || Object.keys(msg.progressDetail as object).length === 0) options.onProgress(`${id}${msg.status}`);
      }
    }, options.signal);
  }

  async buildImage(context: Readable, options: BuildOptions): Promise<string> {
    const docker = await this.docker();
    const [first, ...rest] = options.tags;
    let stream: Readable;
    try {
      stream = await docker.buildImage(context, {
        ...(first !== undefined ? { t: first } : {}),
        dockerfile: options.dockerfile ?? "Dockerfile",
        nocache: options.noCache === true,
        abortSignal: options.signal,
      });
    } catch (err) {
      throw this.wrap("docker build", err);
    }
    let imageId: string | undefined;
    let partial = "";
    await readJsonLines(stream, (msg) => {
      if (typeof msg.error === "string") throw new ContainerRuntimeError("docker build", msg.error.trim());
      const aux = msg.aux as { ID?: unknown } | undefined;
      if (aux !== undefined && typeof aux.ID === "string") imageId = aux.ID;
      if (typeof msg.stream === "string" && options.onProgress !== undefined) {
        const text = partial + msg.stream;
        const lines = text.split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) if (line.trim() !== "") options.onProgress(line.trimEnd());
      }
      if (typeof msg.status === "string" && options.onProgress !== undefined) options.onProgress(msg.status);
    }, options.signal);
    if (partial.trim() !== "") options.onProgress?.(partial.trimEnd());
    if (imageId === undefined && first !== undefined) imageId = (await this.inspectImage(first))?.id;
    if (imageId === undefined) throw new ContainerRuntimeError("docker build", "the engine reported no image id");
    for (const tag of rest) await this.tagImage(imageId, tag);
    return imageId;
  }

  async tagImage(ref: string, tag: string): Promise<void> {
    const colon = tag.lastIndexOf(":");
    const slash = tag.lastIndexOf("/");
    const [repo, version] = colon > slash ? [tag.slice(0, colon), tag.slice(colon + 1)] : [tag, "latest"];
    await this.call(`tag ${ref} as ${tag}`, (docker, abortSignal) => docker.getImage(ref).tag({ repo, tag: version, abortSignal }));
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    const portBindings: Record<string, { HostPort: string }[]> = {};
    const exposed: Record<string, object> = {};
    for (const p of spec.ports ?? []) {
      const key = `${p.containerPort}/${p.protocol ?? "tcp"}`;
      portBindings[key] = [{ HostPort: String(p.hostPort) }];
      exposed[key] = {};
    }
    const options = {
      name: spec.name,
      Image: spec.image,
      Cmd: spec.cmd,
      ...(spec.entrypoint !== undefined ? { Entrypoint: spec.entrypoint } : {}),
      Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
      Labels: spec.labels,
      ...(spec.workingDir !== undefined ? { WorkingDir: spec.workingDir } : {}),
      ...(Object.keys(exposed).length > 0 ? { ExposedPorts: exposed } : {}),
      AttachStdin: false,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      OpenStdin: false,
      HostConfig: {
        // Never auto-removed: the exit code and logs are read first, then the agent removes it.
        AutoRemove: false,
        Binds: (spec.mounts ?? []).map((m) => `${m.source}:${m.target}${m.readOnly ? ":ro" : ""}`),
        ...(spec.networkMode !== undefined ? { NetworkMode: spec.networkMode } : {}),
        ...(Object.keys(portBindings).length > 0 ? { PortBindings: portBindings } : {}),
        ...(spec.gpus === true ? { DeviceRequests: [{ Driver: "", Count: -1, Capabilities: [["gpu"]] }] } : {}),
        ...(spec.shmSizeBytes !== undefined ? { ShmSize: spec.shmSizeBytes } : {}),
        ...(spec.ipcMode !== undefined ? { IpcMode: spec.ipcMode } : {}),
        ...(spec.ulimits !== undefined ? { Ulimits: spec.ulimits.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })) } : {}),
      },
    };
    return this.call(`create container ${spec.name}`, async (docker, abortSignal) => (await docker.createContainer({ ...options, abortSignal })).id);
  }

  async startContainer(id: string): Promise<void> {
    await this.call(`start container ${id.slice(0, 12)}`, (docker, abortSignal) => docker.getContainer(id).start({ abortSignal }));
  }

  async followOutput(id: string, options: FollowOptions): Promise<void> {
    const docker = await this.docker();
    let stream: Readable;
    try {
      stream = await docker.getContainer(id).logs();
    } catch (err) {
      throw this.wrap(`logs of ${id.slice(0, 12)}`, err);
    }
    await pump(stream, options);
  }

  async attachOutput(id: string, options: FollowOptions): Promise<{ finished: Promise<void> }> {
    const docker = await this.docker();
    let stream: Readable;
    try {
      // Before start: the engine wires the container's pipes to this stream before it answers, so every
      // byte comes through. Not `logs`: its replay of the log would repeat what the pipes already carry.
      stream = await docker.getContainer(id).attach();
    } catch (err) {
      throw this.wrap(`attach to ${id.slice(0, 12)}`, err);
    }
    return { finished: pump(stream, options) };
  }

  async waitContainer(id: string): Promise<ExitStatus> {
    const docker = await this.docker();
    try {
      const res = await docker.getContainer(id).wait();
      const error = res.Error?.Message;
      return { exitCode: typeof res.StatusCode === "number" ? res.StatusCode : -1, ...(error !== undefined && error !== "" ? { error } : {}) };
    } catch (err) {
      throw this.wrap(`wait for ${id.slice(0, 12)}`, err);
    }
  }

  async stopContainer(id: string, graceS: number): Promise<void> {
    // The engine itself waits up to `t` seconds before SIGKILL: allow for that beyond the call bound.
    const t = Math.max(0, Math.round(graceS));
    await this.orMissing(`stop container ${id.slice(0, 12)}`, (docker, abortSignal) => docker.getContainer(id).stop({ t, abortSignal }), undefined).catch((err: unknown) => {
      // 304: already stopped.
      if (err instanceof ContainerRuntimeError && err.statusCode === 304) return;
      throw err;
    });
  }

  async killContainer(id: string, signal = "SIGKILL"): Promise<void> {
    await this.orMissing(`kill container ${id.slice(0, 12)}`, (docker, abortSignal) => docker.getContainer(id).kill({ signal, abortSignal }), undefined).catch((err: unknown) => {
      // 409: not running.
      if (err instanceof ContainerRuntimeError && err.statusCode === 409) return;
      throw err;
    });
  }

  async removeContainer(id: string, options: { force?: boolean } = {}): Promise<void> {
    await this.orMissing(`remove container ${id.slice(0, 12)}`, (docker, abortSignal) => docker.getContainer(id).remove({ force: options.force === true, v: true, abortSignal }), undefined).catch((err: unknown) => {
      // 409: removal already in progress.
      if (err instanceof ContainerRuntimeError && err.statusCode === 409 && /already in progress/.test(err.message)) return;
      throw err;
    });
  }

  async inspectContainer(id: string): Promise<ContainerSummary | undefined> {
    return this.orMissing(
      `inspect container ${id.slice(0, 12)}`,
      async (docker, abortSignal) => {
        const c = await docker.getContainer(id).inspect({ abortSignal });
        return {
          id: c.Id,
          name: c.Name.replace(/^\//, ""),
          image: c.Config.Image,
          state: toState(c.State.Status),
          labels: c.Config.Labels ?? {},
        };
      },
      undefined,
    );
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerSummary[]> {
    const filters = { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
    return this.call("list containers", async (docker, abortSignal) => {
      const list = await docker.listContainers({ filters, abortSignal });
      return list.map((c) => ({
        id: c.Id,
        name: (c.Names?.[0] ?? "").replace(/^\//, ""),
        image: c.Image,
        state: toState(c.State),
        labels: c.Labels ?? {},
      }));
    });
  }

  close(): void {
    // Kept-alive sockets to the engine go; a later call opens new ones.
    this.api?.close();
    this.api = undefined;
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
