/**
 * A fake Docker engine for CLI tests: a real HTTP server on a unix socket
 * (hand it to the child as DOCKER_HOST) answering the Engine API routes that
 * preflight uses, as a GPU host with the NVIDIA container toolkit would. The
 * preflight checks talk to the engine, not the docker CLI, so a fake `docker`
 * on PATH no longer steers them; this does.
 */
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface FakeDockerEngine {
  /** `unix://<socket>`. */
  dockerHost: string;
  /** `METHOD /path` of every request, API version prefix removed. */
  requests: string[];
  close(): Promise<void>;
}

export interface FakeDockerOptions {
  /** Local images (`repo:tag`); default the GPU probe image and kitt:latest. */
  images?: string[];
  /** What `nvidia-smi -L` prints in the probe container. */
  gpuLines?: string;
}

export async function startFakeDockerEngine(options: FakeDockerOptions = {}): Promise<FakeDockerEngine> {
  const dir = await mkdtemp(join(tmpdir(), "kitt-cli-engine-"));
  const socketPath = join(dir, "docker.sock");
  const images = new Set(options.images ?? ["nvidia/cuda:12.4.1-base-ubuntu22.04", "kitt:latest"]);
  const gpuLines = options.gpuLines ?? "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)\n";
  const requests: string[] = [];
  const json = (res: http.ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
  };
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://engine").pathname.replace(/^\/v\d+\.\d+/, ""));
    requests.push(`${req.method} ${path}`);
    req.resume();
    const image = /^\/images\/(.+)\/json$/.exec(path)?.[1];
    const action = /^\/containers\/[^/]+\/(\w+)$/.exec(path)?.[1];
    if (path === "/version") return json(res, 200, { Version: "27.1.1", ApiVersion: "1.46", Arch: "amd64", Os: "linux" });
    if (path === "/info") return json(res, 200, { ServerVersion: "27.1.1", Runtimes: { runc: {}, nvidia: {} }, DefaultRuntime: "runc", OSType: "linux" });
    if (image !== undefined) {
      return images.has(image)
        ? json(res, 200, { Id: "sha256:feedface0123456789", RepoTags: [image], Architecture: "amd64", Os: "linux" })
        : json(res, 404, { message: `No such image: ${image}` });
    }
    if (path === "/containers/create") return json(res, 201, { Id: "c0ffee", Warnings: [] });
    if (action === "start" || (req.method === "DELETE" && path.startsWith("/containers/"))) {
      res.writeHead(204).end();
      return;
    }
    if (action === "logs") {
      const body = Buffer.from(gpuLines);
      const header = Buffer.alloc(8);
      header[0] = 1;
      header.writeUInt32BE(body.length, 4);
      res.writeHead(200, { "Content-Type": "application/vnd.docker.raw-stream" }).end(Buffer.concat([header, body]));
      return;
    }
    if (action === "wait") return json(res, 200, { StatusCode: 0 });
    json(res, 404, { message: `page not found: ${req.method} ${path}` });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    dockerHost: `unix://${socketPath}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
