/**
 * Test support for the Docker checks: a fake Docker engine (a real HTTP
 * server on a unix socket, answering the few Engine API routes preflight
 * uses) for the states this machine cannot be put in, and helpers for the
 * real engine: whether one answers, and tiny throw-away images made with
 * `docker import` of a one-file tar (no registry needed).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { DockerRuntime } from "@kitt/containers";

export interface FakeImage {
  id?: string;
  architecture?: string;
  os?: string;
}

export interface FakeEngineOptions {
  version?: string;
  apiVersion?: string;
  arch?: string;
  /** Registered runtimes; default ["runc"] (no NVIDIA toolkit). */
  runtimes?: string[];
  /** Local images by reference. */
  images?: Record<string, FakeImage>;
  /** A pull answers HTTP 500 with this message (as dockerd does when the registry is unreachable); else it succeeds. */
  pullError?: string;
  /** Starting a container answers HTTP 500 with this message. */
  startError?: string;
  /** What the probe container prints to stdout, and its exit code. */
  containerOutput?: string;
  containerExitCode?: number;
  /** The probe container never ends (logs stay open, wait never answers). */
  containerHangs?: boolean;
  /** Listen on 127.0.0.1 (DOCKER_HOST tcp://...), an engine on another machine as far as preflight knows. */
  tcp?: boolean;
}

export interface FakeEngine {
  /** `unix://<socket path>` or `tcp://127.0.0.1:<port>`, for DOCKER_HOST. */
  dockerHost: string;
  /** `METHOD /path` of every request, API version prefix removed. */
  requests: string[];
  close(): Promise<void>;
}

function frame(text: string): Buffer {
  const body = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = 1;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

export async function startFakeDockerEngine(options: FakeEngineOptions = {}): Promise<FakeEngine> {
  const dir = await mkdtemp(join(tmpdir(), "kitt-engine-"));
  const socketPath = join(dir, "docker.sock");
  const images = new Map(Object.entries(options.images ?? {}));
  const requests: string[] = [];
  const json = (res: http.ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://engine");
    const path = decodeURIComponent(url.pathname.replace(/^\/v\d+\.\d+/, ""));
    requests.push(`${req.method} ${path}`);
    req.resume();
    const image = /^\/images\/(.+)\/json$/.exec(path);
    const container = /^\/containers\/([^/]+)(?:\/(\w+))?$/.exec(path);
    if (req.method === "GET" && path === "/version") {
      return json(res, 200, { Version: options.version ?? "27.3.1", ApiVersion: options.apiVersion ?? "1.47", Arch: options.arch ?? "amd64", Os: "linux" });
    }
    if (req.method === "GET" && path === "/info") {
      const runtimes = Object.fromEntries((options.runtimes ?? ["runc"]).map((r) => [r, { path: r }]));
      return json(res, 200, { ServerVersion: options.version ?? "27.3.1", Runtimes: runtimes, DefaultRuntime: "runc", OSType: "linux" });
    }
    if (req.method === "GET" && path === "/images/json") {
      return json(res, 200, [...images.entries()].map(([ref, img]) => ({ Id: img.id ?? `sha256:${ref.length}`, RepoTags: [ref], Size: 1 })));
    }
    if (req.method === "GET" && image?.[1] !== undefined) {
      const found = images.get(image[1]);
      if (found === undefined) return json(res, 404, { message: `No such image: ${image[1]}` });
      return json(res, 200, {
        Id: found.id ?? "sha256:0123456789abcdef0123456789abcdef",
        RepoTags: [image[1]],
        Architecture: found.architecture ?? options.arch ?? "amd64",
        Os: found.os ?? "linux",
      });
    }
    if (req.method === "POST" && path === "/images/create") {
      if (options.pullError !== undefined) return json(res, 500, { message: options.pullError });
      const ref = `${url.searchParams.get("fromImage") ?? ""}:${url.searchParams.get("tag") ?? "latest"}`;
      images.set(ref, {});
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(`${JSON.stringify({ status: `Pulling from ${ref}` })}\n${JSON.stringify({ status: "Download complete" })}\n`);
      return;
    }
    if (req.method === "POST" && path === "/containers/create") return json(res, 201, { Id: "c0ffee0123456789", Warnings: [] });
    if (container !== null) {
      const action = container[2];
      if (req.method === "POST" && action === "start") {
        if (options.startError !== undefined) return json(res, 500, { message: options.startError });
        res.writeHead(204).end();
        return;
      }
      if (options.containerHangs === true && (action === "logs" || action === "wait")) return;
      if (req.method === "GET" && action === "logs") {
        res.writeHead(200, { "Content-Type": "application/vnd.docker.raw-stream" });
        res.end(frame(options.containerOutput ?? ""));
        return;
      }
      if (req.method === "POST" && action === "wait") return json(res, 200, { StatusCode: options.containerExitCode ?? 0 });
      if (req.method === "DELETE" && action === undefined) {
        res.writeHead(204).end();
        return;
      }
    }
    json(res, 404, { message: `page not found: ${req.method} ${path}` });
  });
  await new Promise<void>((resolve) => (options.tcp === true ? server.listen(0, "127.0.0.1", resolve) : server.listen(socketPath, resolve)));
  const address = server.address();
  return {
    dockerHost: typeof address === "object" && address !== null ? `tcp://127.0.0.1:${address.port}` : `unix://${socketPath}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const run = promisify(execFile);

/**
 * True when the engine of this process's DOCKER_HOST answers. Otherwise the
 * real-engine tests are skipped with one stderr line, except under CI=true,
 * where a missing engine is a broken CI machine and throws.
 */
export async function realEngineAvailable(what: string): Promise<boolean> {
  try {
    await new DockerRuntime({ callTimeoutMs: 5000 }).info();
    return true;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    if (process.env.CI === "true") throw new Error(`CI=true but no Docker engine answers for ${what}: ${why}`, { cause: error });
    process.stderr.write(`skipping ${what} against the real Docker engine: ${why}\n`);
    return false;
  }
}

export function randomSuffix(): string {
  return randomBytes(4).toString("hex");
}

/** A POSIX tar holding one small regular file, written by hand (no tar binary needed). */
function oneFileTar(name: string, content: string): Buffer {
  const body = Buffer.from(content);
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string): void => void header.write(value, offset, length, "ascii");
  field(0, 100, name);
  field(100, 8, "0000644\0");
  field(108, 8, "0000000\0");
  field(116, 8, "0000000\0");
  field(124, 12, `${body.length.toString(8).padStart(11, "0")}\0`);
  field(136, 12, `${Math.floor(Date.now() / 1000).toString(8).padStart(11, "0")}\0`);
  field(148, 8, "        ");
  field(156, 1, "0");
  field(257, 6, "ustar\0");
  field(263, 2, "00");
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return Buffer.concat([header, body, Buffer.alloc((512 - (body.length % 512)) % 512), Buffer.alloc(1024)]);
}

/** Imports a one-file image tagged `ref` into the real engine (docker CLI, bounded). */
export async function importTinyImage(ref: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "kitt-image-"));
  try {
    const tarPath = join(dir, "rootfs.tar");
    await writeFile(tarPath, oneFileTar("hello.txt", "hello from a kitt test image\n"));
    await run("docker", ["import", tarPath, ref], { timeout: 60_000 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Removes tags (the image goes with its last tag); one already gone is fine. */
export async function removeTags(...refs: string[]): Promise<void> {
  for (const ref of refs) await run("docker", ["rmi", ref], { timeout: 60_000 }).catch(() => undefined);
}
