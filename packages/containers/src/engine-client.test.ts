import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";

import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { DockerRuntime } from "./docker-runtime.js";
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

type Route = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** A stand-in engine on a unix socket: answers by "METHOD path" (query string dropped); records what it got. */
async function fakeEngine(routes: Record<string, Route>) {
  const socket = join(await tempDir(), "docker.sock");
  const seen: { method: string; url: string; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (c: string) => (body += c));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", body });
      const route = routes[`${req.method} ${(req.url ?? "").split("?")[0]}`];
      if (route === undefined) {
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: `page not found: ${req.url}` }));
        return;
      }
      route(req, res, body);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(socket, r));
  const runtime = new DockerRuntime({ env: { DOCKER_HOST: `unix://${socket}` }, callTimeoutMs: 2_000 });
  runtimes.push(runtime);
  return { runtime, seen };
}

const json = (status: number, body: unknown): Route => (_req, res) => {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
};

/** One frame of the engine's multiplexed stdout/stderr stream. */
function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe("the Engine API client (a stand-in engine on a unix socket)", () => {
  it("maps answers: 404 is 'missing', 304 and 409 where harmless, others an error with the engine's message", async () => {
    const { runtime, seen } = await fakeEngine({
      "POST /containers/gone/stop": json(404, { message: "No such container: gone" }),
      "POST /containers/done/stop": (_q, res) => res.writeHead(304).end(),
      "POST /containers/idle/kill": json(409, { message: "Container idle is not running" }),
      "POST /containers/bad/start": json(500, { message: "failed to create task: OCI runtime create failed\nsecond line" }),
      "POST /containers/create": json(201, { Id: "abc123", Warnings: [] }),
      "GET /images/registry:5000/team/kitt:v1/json": json(200, { Id: "sha256:1", RepoTags: ["registry:5000/team/kitt:v1"], Architecture: "amd64", Os: "linux", Size: 7 }),
    });
    await expect(runtime.stopContainer("gone", 1)).resolves.toBeUndefined();
    await expect(runtime.stopContainer("done", 1)).resolves.toBeUndefined();
    await expect(runtime.killContainer("idle")).resolves.toBeUndefined();
    const err = await runtime.startContainer("bad").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContainerRuntimeError);
    expect(err).toMatchObject({ statusCode: 500 });
    expect((err as Error).message).toContain("failed to create task: OCI runtime create failed");
    expect((err as Error).message).not.toContain("second line");
    expect(await runtime.inspectImage("missing:tag")).toBeUndefined();
    expect(await runtime.inspectImage("registry:5000/team/kitt:v1")).toMatchObject({ id: "sha256:1", architecture: "amd64", sizeBytes: 7 });

    const id = await runtime.createContainer({ name: "kitt-run-1", image: "kitt:latest", cmd: ["run"], labels: { "kitt.agent": "a" }, gpus: true });
    expect(id).toBe("abc123");
    const create = seen.find((s) => s.url.startsWith("/containers/create"));
    expect(create?.url).toBe("/containers/create?name=kitt-run-1");
    expect(JSON.parse(create?.body ?? "{}")).toMatchObject({
      Image: "kitt:latest",
      Cmd: ["run"],
      Labels: { "kitt.agent": "a" },
      HostConfig: { AutoRemove: false, DeviceRequests: [{ Driver: "", Count: -1, Capabilities: [["gpu"]] }] },
    });
  });

  it("reads a pull's progress stream and fails on an error inside it, asking for one tag only", async () => {
    const { runtime, seen } = await fakeEngine({
      "POST /images/create": (req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.write(`${JSON.stringify({ status: "Pulling from library/kitt", id: "v2" })}\n`);
        if ((req.url ?? "").includes("tag=broken")) res.end(`${JSON.stringify({ errorDetail: { message: "manifest unknown" }, error: "manifest unknown" })}\n`);
        else res.end(`${JSON.stringify({ status: "Download complete" })}\n`);
      },
    });
    const progress: string[] = [];
    await runtime.pullImage("kitt:v2", { onProgress: (l) => progress.push(l) });
    expect(progress).toEqual(["v2: Pulling from library/kitt", "Download complete"]);
    expect(seen[0]?.url).toBe("/images/create?fromImage=kitt&tag=v2");
    await runtime.pullImage("kitt");
    expect(seen[1]?.url).toBe("/images/create?fromImage=kitt&tag=latest");
    await expect(runtime.pullImage("kitt:broken")).rejects.toThrow(/manifest unknown/);
  });

  it("attaches, demultiplexing stdout and stderr until the engine closes the stream", async () => {
    const { runtime } = await fakeEngine({
      "POST /containers/c1/attach": (_req, res) => {
        res.writeHead(200, { "content-type": "application/vnd.docker.raw-stream" });
        res.write(frame(1, "line one\n"));
        res.write(frame(2, "a warning\n"));
        setTimeout(() => res.end(frame(1, "line two\n")), 20);
      },
    });
    const got: { stream: string; text: string }[] = [];
    const { finished } = await runtime.attachOutput("c1", { onData: (chunk, stream) => got.push({ stream, text: chunk.toString() }) });
    await finished;
    expect(got).toEqual([
      { stream: "stdout", text: "line one\n" },
      { stream: "stderr", text: "a warning\n" },
      { stream: "stdout", text: "line two\n" },
    ]);
  });

  it("says plainly when there is no engine, and bounds a call that gets no answer", async () => {
    const missing = new DockerRuntime({ env: { DOCKER_HOST: `unix://${join(await tempDir(), "none.sock")}` } });
    runtimes.push(missing);
    const err = await missing.info().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContainerRuntimeUnavailableError);
    expect((err as Error).message).toMatch(/no socket \(is the Docker engine installed and running\?\)/);

    const { runtime } = await fakeEngine({ "GET /info": () => {}, "GET /version": () => {} });
    const slow = await runtime.info().catch((e: unknown) => e);
    expect(slow).toBeInstanceOf(ContainerRuntimeUnavailableError);
    expect((slow as Error).message).toMatch(/no answer to docker info within 2000 ms/);
  });
});
