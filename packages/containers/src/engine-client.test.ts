/**
 * DockerRuntime's own Engine API client against a stand-in engine: a real
 * HTTP server on a unix socket, for the answers the real engine cannot be
 * made to give on demand (500s, an error inside a progress stream, a call
 * that never answers, a 101 or a 200 to an attach).
 */
import { chmod } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import { Readable } from "node:stream";

import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { DockerRuntime, type DockerRuntimeOptions } from "./docker-runtime.js";
import { ContainerRuntimeError, ContainerRuntimeUnavailableError } from "./runtime.js";

const tempDir = useTempDir(afterEach);
const servers: Server[] = [];
const runtimes: DockerRuntime[] = [];
afterEach(async () => {
  for (const r of runtimes.splice(0)) r.close();
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

type Route = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

interface EngineOptions {
  /** What GET /version says as ApiVersion; null: it answers 404. */
  apiVersion?: string | null;
  /** Answers a request asking to upgrade (attach) itself; without it such a request is routed as any other. */
  upgrade?: (req: IncomingMessage, socket: Socket) => void;
  runtime?: DockerRuntimeOptions;
}

/** A stand-in engine: answers by "METHOD path" (API version prefix and query dropped); records what it got. */
async function fakeEngine(routes: Record<string, Route>, options: EngineOptions = {}) {
  const socket = join(await tempDir(), "docker.sock");
  const seen: { method: string; url: string; body: Buffer; headers: IncomingMessage["headers"] }[] = [];
  const connections: Socket[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? "", url: req.url ?? "", body, headers: req.headers });
      const path = (req.url ?? "").split("?")[0]?.replace(/^\/v\d+\.\d+\//, "/") ?? "";
      if (req.method === "GET" && path === "/version" && routes["GET /version"] === undefined && options.apiVersion !== null) {
        return json(200, { Version: "27.3.1", ApiVersion: options.apiVersion ?? "1.41", Os: "linux", Arch: "amd64" })(req, res, body);
      }
      const route = routes[`${req.method} ${path}`] ?? json(404, { message: `page not found: ${req.method} ${path}` });
      route(req, res, body);
    });
  });
  // The engine never closes an idle connection: whatever closes one here is the client.
  server.keepAliveTimeout = 0;
  server.on("connection", (s: Socket) => connections.push(s));
  if (options.upgrade !== undefined) server.on("upgrade", options.upgrade);
  servers.push(server);
  await new Promise<void>((r) => server.listen(socket, r));
  const runtime = new DockerRuntime({ env: { DOCKER_HOST: `unix://${socket}` }, callTimeoutMs: 2_000, ...options.runtime });
  runtimes.push(runtime);
  /** What the engine saw, without the version question. */
  const calls = () => seen.filter((s) => !/^\/(v[\d.]+\/)?version$/.test(s.url));
  return { runtime, seen, calls, connections, socket };
}

function json(status: number, body: unknown): Route {
  return (_req, res) => void res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

/** JSON progress lines, as pull and build stream them. */
function lines(...messages: unknown[]): string {
  return messages.map((m) => `${JSON.stringify(m)}\n`).join("");
}

/** One frame of the engine's multiplexed stdout/stderr stream. */
function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

function collect() {
  const got: { stream: string; text: string }[] = [];
  return { got, onData: (chunk: Buffer, stream: string) => got.push({ stream, text: chunk.toString() }) };
}

describe("answers with an error status", () => {
  it("404 is 'missing', 304 and 409 where harmless; others one line with the engine's message and the status", async () => {
    const { runtime } = await fakeEngine({
      "POST /containers/gone/stop": json(404, { message: "No such container: gone" }),
      "POST /containers/done/stop": (_q, res) => void res.writeHead(304).end(),
      "POST /containers/idle/kill": json(409, { message: "Container idle is not running" }),
      "DELETE /containers/going": json(409, { message: "removal of container going is already in progress" }),
      "POST /containers/bad/start": json(500, { message: "failed to create task: OCI runtime create failed\nnvidia-container-cli: initialization error" }),
      "POST /containers/create": json(409, { message: 'Conflict. The container name "/kitt-run-1" is already in use' }),
      "GET /containers/json": (_q, res) => void res.writeHead(500, { "content-type": "text/plain" }).end("plain text, not JSON\n"),
    });
    await expect(runtime.stopContainer("gone", 1)).resolves.toBeUndefined();
    await expect(runtime.stopContainer("done", 1)).resolves.toBeUndefined();
    await expect(runtime.killContainer("idle")).resolves.toBeUndefined();
    await expect(runtime.removeContainer("going")).resolves.toBeUndefined();
    expect(await runtime.inspectImage("missing:tag")).toBeUndefined();
    expect(await runtime.inspectContainer("missing")).toBeUndefined();

    const start = await runtime.startContainer("bad").catch((e: unknown) => e);
    expect(start).toBeInstanceOf(ContainerRuntimeError);
    expect(start).toMatchObject({
      statusCode: 500,
      message: "start container bad: failed to create task: OCI runtime create failed (HTTP 500)",
      engineMessage: "failed to create task: OCI runtime create failed\nnvidia-container-cli: initialization error",
    });
    const create = await runtime.createContainer({ name: "kitt-run-1", image: "kitt:latest", cmd: [], labels: {} }).catch((e: unknown) => e);
    expect(create).toMatchObject({ statusCode: 409, message: 'create container kitt-run-1: Conflict. The container name "/kitt-run-1" is already in use (HTTP 409)' });
    await expect(runtime.listContainers({ a: "b" })).rejects.toThrow(/^list containers: plain text, not JSON \(HTTP 500\)$/);
  });

  it("sends what the runtime means: the create body, one tag to pull, label filters, a stop's grace", async () => {
    const { runtime, calls } = await fakeEngine({
      "POST /containers/create": json(201, { Id: "abc123", Warnings: [] }),
      "GET /images/registry:5000/team/kitt:v1/json": json(200, { Id: "sha256:1", RepoTags: ["registry:5000/team/kitt:v1"], Architecture: "amd64", Os: "linux", Size: 7 }),
      "GET /containers/json": json(200, [{ Id: "abc123", Names: ["/kitt-run-1"], Image: "kitt:latest", State: "exited", Labels: { "kitt.agent": "a" } }]),
      "POST /containers/abc123/stop": (_q, res) => void res.writeHead(204).end(),
    });
    expect(await runtime.createContainer({ name: "kitt-run-1", image: "kitt:latest", cmd: ["run"], labels: { "kitt.agent": "a" }, gpus: true })).toBe("abc123");
    expect(await runtime.inspectImage("registry:5000/team/kitt:v1")).toMatchObject({ id: "sha256:1", architecture: "amd64", sizeBytes: 7 });
    expect(await runtime.listContainers({ "kitt.agent": "a" })).toEqual([{ id: "abc123", name: "kitt-run-1", image: "kitt:latest", state: "exited", labels: { "kitt.agent": "a" } }]);
    await runtime.stopContainer("abc123", 7.4);
    const [create, inspect, list, stop] = calls();
    expect(create?.url).toBe("/v1.41/containers/create?name=kitt-run-1");
    expect(JSON.parse(create?.body.toString() ?? "{}")).toMatchObject({
      Image: "kitt:latest",
      Cmd: ["run"],
      Labels: { "kitt.agent": "a" },
      HostConfig: { AutoRemove: false, DeviceRequests: [{ Driver: "", Count: -1, Capabilities: [["gpu"]] }] },
    });
    expect(inspect?.url).toBe("/v1.41/images/registry:5000/team/kitt:v1/json");
    expect(new URL(list?.url ?? "", "http://engine").searchParams.get("filters")).toBe('{"label":["kitt.agent=a"]}');
    expect(stop?.url).toBe("/v1.41/containers/abc123/stop?t=7");
  });
});

describe("the API version", () => {
  it.each([
    ["1.41", "/v1.41"],
    ["1.52", "/v1.47"],
    [null, ""],
  ] as const)("engine says %j: requests go to %j, asked once", async (apiVersion, prefix) => {
    const { runtime, seen } = await fakeEngine({ "GET /images/json": json(200, []) }, { apiVersion });
    await runtime.listImages();
    await runtime.listImages();
    expect(seen.map((s) => s.url)).toEqual(["/version", `${prefix}/images/json`, `${prefix}/images/json`]);
    expect(runtime.apiVersion).toBe(prefix.replace("/v", ""));
  });
});

describe("progress streams", () => {
  it("a pull: one tag asked for, state lines passed on, an error line mid-way fails it with the engine's words", async () => {
    const { runtime, calls } = await fakeEngine({
      "POST /images/create": (req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.write(lines({ status: "Pulling from library/kitt", id: "v2" }, { status: "Downloading", id: "l1", progressDetail: { current: 1, total: 9 } }));
        if (!(req.url ?? "").includes("tag=broken")) return void res.end(lines({ status: "Download complete", id: "l1", progressDetail: {} }));
        res.end(lines({ errorDetail: { message: "manifest for kitt:broken not found: manifest unknown" }, error: "manifest unknown" }, { status: "never read" }));
      },
    });
    const progress: string[] = [];
    await runtime.pullImage("kitt:v2", { onProgress: (l) => progress.push(l) });
    expect(progress).toEqual(["v2: Pulling from library/kitt", "l1: Download complete"]);
    await runtime.pullImage("kitt");
    progress.length = 0;
    const err = await runtime.pullImage("kitt:broken", { onProgress: (l) => progress.push(l) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContainerRuntimeError);
    expect((err as Error).message).toBe("pull kitt:broken: manifest for kitt:broken not found: manifest unknown");
    expect(progress).toEqual(["v2: Pulling from library/kitt"]);
    expect(calls().map((c) => c.url)).toEqual([
      "/v1.41/images/create?fromImage=kitt&tag=v2",
      "/v1.41/images/create?fromImage=kitt&tag=latest",
      "/v1.41/images/create?fromImage=kitt&tag=broken",
    ]);
  });

  it("a build: the tar context uploaded, output lines passed on, the image id from aux, the other tags set; errorDetail fails it", async () => {
    const context = Buffer.from("a tar stream, as far as the engine stand-in cares");
    const { runtime, calls } = await fakeEngine({
      "POST /build": (req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.write(lines({ stream: "Step 1/2 : FROM scratch\n ---> " }, { stream: "abc\n" }));
        if ((req.url ?? "").includes("broken")) return void res.end(lines({ errorDetail: { code: 1, message: "COPY failed: file not found\nin build context" }, error: "COPY failed" }, { aux: { ID: "sha256:never" } }));
        res.end(lines({ stream: "Step 2/2 : COPY x /x" }, { aux: { ID: "sha256:feed" } }));
      },
      "POST /images/sha256:feed/tag": (_q, res) => void res.writeHead(201).end(),
    });
    const progress: string[] = [];
    const id = await runtime.buildImage(Readable.from([context]), { tags: ["kitt-x:1", "kitt:latest"], dockerfile: "docker/web/Dockerfile", onProgress: (l) => progress.push(l) });
    expect(id).toBe("sha256:feed");
    expect(progress).toEqual(["Step 1/2 : FROM scratch", " ---> abc", "Step 2/2 : COPY x /x"]);
    const [build, tag] = calls();
    expect(build?.body).toEqual(context);
    expect(build?.headers["content-type"]).toBe("application/x-tar");
    expect(build?.url).toBe("/v1.41/build?t=kitt-x%3A1&dockerfile=docker%2Fweb%2FDockerfile&nocache=0&rm=1&forcerm=1");
    expect(tag?.url).toBe("/v1.41/images/sha256:feed/tag?repo=kitt&tag=latest");

    const err = await runtime.buildImage(Readable.from([context]), { tags: ["broken:1"] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ message: "docker build: COPY failed: file not found", engineMessage: "COPY failed: file not found\nin build context" });
  });

  it("an abort ends a pull mid-stream with the caller's reason, and the connection goes", async () => {
    let closed: Promise<void> | undefined;
    const { runtime } = await fakeEngine({
      "POST /images/create": (req, res) => {
        closed = new Promise((r) => req.socket.once("close", () => r()));
        res.writeHead(200, { "content-type": "application/json" }).write(lines({ status: "Pulling fs layer", id: "l1" }));
      },
    });
    const abort = new AbortController();
    const pulled = runtime.pullImage("kitt:slow", { signal: abort.signal, onProgress: () => abort.abort(new Error("did not finish within 1 s")) });
    await expect(pulled).rejects.toThrow(/^did not finish within 1 s$/);
    await closed;
  });
});

describe("attach", () => {
  it("asks to upgrade; after the 101 the raw socket is read, the bytes sent with the answer included", async () => {
    const { runtime, calls } = await fakeEngine(
      {},
      {
        upgrade: (req, socket) => {
          expect(req.headers).toMatchObject({ connection: "Upgrade", upgrade: "tcp" });
          // The first frames in the same write as the answer's head: they arrive with it.
          socket.write(Buffer.concat([Buffer.from("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"), frame(1, "first line\n"), frame(2, "a warning\n")]));
          setImmediate(() => socket.end(frame(1, "last line\n")));
        },
      },
    );
    const out = collect();
    const { finished } = await runtime.attachOutput("c1", { onData: out.onData });
    await finished;
    expect(out.got).toEqual([
      { stream: "stdout", text: "first line\n" },
      { stream: "stderr", text: "a warning\n" },
      { stream: "stdout", text: "last line\n" },
    ]);
    expect(calls()).toEqual([]);
  });

  it("an engine that answers 200 instead streams the same bytes as the body", async () => {
    const { runtime, calls } = await fakeEngine({
      "POST /containers/c1/attach": (_req, res) => {
        res.writeHead(200, { "content-type": "application/vnd.docker.raw-stream" });
        res.write(frame(1, "line one\n"));
        setImmediate(() => res.end(Buffer.concat([frame(2, "a warning\n"), frame(1, "line two\n")])));
      },
    });
    const out = collect();
    const { finished } = await runtime.attachOutput("c1", { onData: out.onData });
    await finished;
    expect(out.got.map((g) => `${g.stream}:${g.text}`).join("")).toBe("stdout:line one\nstderr:a warning\nstdout:line two\n");
    expect(calls()[0]?.url).toBe("/v1.41/containers/c1/attach?stream=1&logs=0&stdout=1&stderr=1");
  });

  it("a container the engine does not know: the engine's message and status", async () => {
    const { runtime } = await fakeEngine({ "POST /containers/nope/attach": json(404, { message: "No such container: nope" }) });
    await expect(runtime.attachOutput("nope", { onData: () => {} })).rejects.toThrow(/^attach to nope: No such container: nope \(HTTP 404\)$/);
  });
});

describe("no engine, a silent one, sockets", () => {
  it("no socket, and a socket nobody listens on, are named as such", async () => {
    const dir = await tempDir();
    const missing = new DockerRuntime({ env: { DOCKER_HOST: `unix://${join(dir, "none.sock")}` } });
    runtimes.push(missing);
    await expect(missing.info()).rejects.toThrow(`Docker is not available at unix://${join(dir, "none.sock")}: no socket (is the Docker engine installed and running?)`);
    const { runtime, socket } = await fakeEngine({});
    await new Promise((r) => servers.pop()?.close(r));
    await expect(runtime.listImages()).rejects.toThrow(new RegExp(`^Docker is not available at unix://${socket}: (no socket|connection refused)`));
  });

  it.skipIf(process.getuid?.() === 0)("a socket the user may not open: the docker group", async () => {
    const { runtime, socket } = await fakeEngine({});
    await chmod(socket, 0o000);
    await expect(runtime.info()).rejects.toThrow(/permission denied on the socket \(add the agent's user to the docker group\)$/);
  });

  it("a call that gets no answer is bounded", async () => {
    const { runtime } = await fakeEngine({ "GET /info": () => {} });
    const slow = await runtime.info().catch((e: unknown) => e);
    expect(slow).toBeInstanceOf(ContainerRuntimeUnavailableError);
    expect((slow as Error).message).toMatch(/no answer to docker info within 2000 ms$/);
  });

  it("short calls share one kept-alive connection, closed once idle", async () => {
    const { runtime, connections } = await fakeEngine({ "GET /images/json": json(200, []) }, { runtime: { idleSocketMs: 100 } });
    for (let i = 0; i < 5; i++) await runtime.listImages();
    expect(connections).toHaveLength(1);
    await new Promise<void>((r) => (connections[0]?.closed === true ? r() : connections[0]?.once("close", () => r())));
    expect(connections[0]?.closed).toBe(true);
  });
});
