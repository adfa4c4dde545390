import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import { startFakeKittServer, type FakeKittServer } from "@kitt/testkit";
import { fakeNvmlEnv } from "@kitt/testkit/nvml";
import { afterEach, describe, expect, it } from "vitest";
import { runPreflight } from "./preflight.js";
import type { PreflightOptions, PreflightResult } from "./preflight-types.js";
import { startFakeDockerEngine, type FakeEngine, type FakeEngineOptions } from "./test-docker.js";
import { fakeCommandCalls, makeFakeMachine, type FakeCommand, type FakeMachine } from "./test-host.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Docker is absent unless a test brings an engine: DOCKER_HOST names a socket that does not exist. */
const NO_DOCKER = "unix:///nonexistent/kitt-test/docker.sock";

async function machine(commands: Record<string, FakeCommand> = {}, dockerHost = NO_DOCKER): Promise<FakeMachine> {
  const m = await makeFakeMachine({ commands, env: { DOCKER_HOST: dockerHost } });
  cleanups.push(() => m.cleanup());
  return m;
}

async function engine(options: FakeEngineOptions): Promise<FakeEngine> {
  const e = await startFakeDockerEngine(options);
  cleanups.push(() => e.close());
  return e;
}

async function kitt(): Promise<FakeKittServer> {
  const server = await startFakeKittServer();
  cleanups.push(() => server.close());
  return server;
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "0.0.0.0", r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** Holds a port on every interface, as a running agent would. */
async function busyPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "0.0.0.0", r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return (server.address() as net.AddressInfo).port;
}

const NO_NVML = { libraryPath: "/nonexistent/libnvidia-ml.so.1" };
const CUDA = "nvidia/cuda:12.4.1-base-ubuntu22.04";
/** A host ready for GPU containers: the nvidia runtime, the probe image and kitt:latest present. */
const READY_ENGINE: FakeEngineOptions = {
  runtimes: ["runc", "nvidia"],
  images: { [CUDA]: {}, "kitt:latest": { id: "sha256:abcdef0123456789abcdef" } },
  containerOutput: "GPU 0: NVIDIA H200 (UUID: GPU-0)\nGPU 1: NVIDIA H200 (UUID: GPU-1)\n",
};
const WORKING_SMI: FakeCommand = { stdout: "570.86.15, NVIDIA H200\n570.86.15, NVIDIA H200\n" };

function byId(result: PreflightResult): Record<string, { status: string; required: boolean; detail: string }> {
  return Object.fromEntries(result.checks.map((c) => [c.id, { status: c.status, required: c.required, detail: c.detail }]));
}

describe("runPreflight", () => {
  it("passes every check on a ready host", async () => {
    const docker = await engine(READY_ENGINE);
    const m = await machine({ "nvidia-smi": WORKING_SMI, "mount.nfs": {}, kitt: {} }, docker.dockerHost);
    const server = await kitt();
    const port = await freePort();
    const modelDir = join(m.root, "data", "models");
    const result = await runPreflight({
      host: m.host,
      nvml: NO_NVML,
      serverUrl: server.url,
      port,
      modelDir,
      minFreeDiskGb: 0,
      nodeVersion: "22.13.0",
    });

    expect(result.checks.map((c) => [c.id, c.name, c.required, c.status])).toEqual([
      ["node", "Node.js >= 22.13", true, "pass"],
      ["docker", "Docker available", true, "pass"],
      ["docker-gpu", "Docker GPU access", true, "pass"],
      ["nvidia-driver", "NVIDIA drivers", true, "pass"],
      ["nfs", "NFS utilities", false, "pass"],
      ["disk", "Disk space >= 0 GiB", false, "pass"],
      ["server", "Server reachable", true, "pass"],
      ["port", "Port available", false, "pass"],
      ["kitt-image", "KITT Docker image", false, "pass"],
      ["benchmark-cli", "Benchmark CLI found", false, "pass"],
    ]);
    expect(result.ok).toBe(true);
    const checks = byId(result);
    expect(checks.node?.detail).toBe("v22.13.0");
    expect(checks.docker?.detail).toBe(`Docker server 27.3.1 (API 1.47, linux/amd64) at ${docker.dockerHost}`);
    expect(checks["docker-gpu"]?.detail).toBe("2 GPUs visible inside containers (nvidia/cuda:12.4.1-base-ubuntu22.04)");
    expect(checks["kitt-image"]?.detail).toBe("kitt:latest (linux/amd64, image abcdef012345)");
    expect(checks["nvidia-driver"]?.detail).toBe("driver 570.86.15, 2 GPUs (nvidia-smi)");
    expect(checks.nfs?.detail).toBe(`mount.nfs at ${join(m.bin, "mount.nfs")}`);
    expect(checks.disk?.detail).toMatch(new RegExp(`^\\d+(\\.\\d{1,2})? GiB free at ${modelDir}$`));
    expect(checks.server?.detail).toBe(`${server.url} is healthy`);
    expect(checks.port?.detail).toBe(`port ${port} is free`);
    expect(checks["benchmark-cli"]?.detail).toBe(`kitt at ${join(m.bin, "kitt")}`);
    expect(existsSync(modelDir)).toBe(true);
    // Through the Engine API (there is no docker CLI on this PATH): the probe container is created, started and removed.
    expect(docker.requests).toEqual(
      expect.arrayContaining(["GET /info", "POST /containers/create", "POST /containers/c0ffee0123456789/start", "DELETE /containers/c0ffee0123456789"]),
    );
    expect(docker.requests).not.toContain("POST /images/create");
  });

  it("fails every check on a bare host; only required failures make it fail", async () => {
    const m = await machine();
    const server = await kitt();
    const url = server.url;
    await server.close();
    const port = await busyPort();
    const result = await runPreflight({
      host: m.host,
      nvml: NO_NVML,
      serverUrl: url,
      port,
      modelDir: join(m.root, "models"),
      minFreeDiskGb: 1e9,
      nodeVersion: "20.11.1",
      benchmarkCommand: "kitt-bench",
    });
    expect(result.ok).toBe(false);
    expect(byId(result)).toEqual({
      node: { status: "fail", required: true, detail: "found 20.11.1, need >= 22.13" },
      docker: {
        status: "fail",
        required: true,
        detail: "Docker is not available at unix:///nonexistent/kitt-test/docker.sock: no socket (is the Docker engine installed and running?)",
      },
      "docker-gpu": { status: "fail", required: true, detail: "not run: Docker is not available" },
      "nvidia-driver": {
        status: "fail",
        required: true,
        detail: "no NVIDIA driver: libnvidia-ml.so.1 cannot be loaded and nvidia-smi is not on PATH",
      },
      nfs: {
        status: "warn",
        required: false,
        detail: "mount.nfs not found on PATH (install nfs-common or nfs-utils to use NFS model shares)",
      },
      disk: { status: "warn", required: false, detail: expect.stringMatching(/^only \d+(\.\d{1,2})? GiB free at .*models \(want 1000000000 GiB\)$/) },
      server: { status: "fail", required: true, detail: `connection refused by ${new URL(url).host}` },
      port: { status: "warn", required: false, detail: `port ${port} is in use` },
      "kitt-image": { status: "warn", required: false, detail: "not run: Docker is not available" },
      "benchmark-cli": {
        status: "warn",
        required: false,
        detail: "kitt-bench not found on PATH (install the KITT benchmark CLI)",
      },
    });
  });

  it("is ok with warnings only, and reports the server check as not run without a URL", async () => {
    const docker = await engine({ ...READY_ENGINE, images: { [CUDA]: {} } });
    const m = await machine({ "nvidia-smi": WORKING_SMI }, docker.dockerHost);
    const result = await runPreflight({
      host: m.host,
      nvml: NO_NVML,
      port: await busyPort(),
      modelDir: join(m.root, "models"),
      minFreeDiskGb: 0,
    });
    expect(result.ok).toBe(true);
    expect(byId(result).server).toEqual({ status: "warn", required: false, detail: "not run: no server URL given" });
    expect(result.checks.filter((c) => c.status === "warn").map((c) => c.id)).toEqual(["nfs", "server", "port", "kitt-image", "benchmark-cli"]);
  });

  it("NVIDIA drivers through NVML (fake libnvidia-ml), without spawning nvidia-smi", async () => {
    const m = await machine({ "nvidia-smi": WORKING_SMI });
    const env = await fakeNvmlEnv({ gpus: Array.from({ length: 8 }, () => ({})), driverVersion: "570.86.15", cudaVersion: 12080 });
    const result = await runPreflight({
      port: await freePort(),
      host: m.host,
      nvml: { libraryPath: env.KITT_NVML_PATH },
      minFreeDiskGb: 0,
      modelDir: join(m.root, "m"),
    });
    expect(byId(result)["nvidia-driver"]).toEqual({
      status: "pass",
      required: true,
      detail: "driver 570.86.15, CUDA 12.8, 8 GPUs (NVML)",
    });
    expect(await fakeCommandCalls(m.bin, "nvidia-smi")).toEqual([]);
  });

  it("NVIDIA drivers: a driver that sees no GPU fails", async () => {
    const m = await machine();
    const env = await fakeNvmlEnv({ gpus: [] });
    const checks = byId(
      await runPreflight({
        port: await freePort(),
        host: m.host,
        nvml: { libraryPath: env.KITT_NVML_PATH },
        minFreeDiskGb: 0,
        modelDir: join(m.root, "m"),
      }),
    );
    expect(checks["nvidia-driver"]).toMatchObject({ status: "fail", detail: "driver 570.86.15 is loaded but sees no GPU" });
  });

  it("NVIDIA drivers: a failing nvidia-smi is quoted, with why NVML was not used", async () => {
    const m = await machine({
      "nvidia-smi": {
        stdout: "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
        exitCode: 9,
      },
    });
    const env = await fakeNvmlEnv({ gpus: [{}], initError: 9 });
    const checks = byId(
      await runPreflight({
        port: await freePort(),
        host: m.host,
        nvml: { libraryPath: env.KITT_NVML_PATH },
        minFreeDiskGb: 0,
        modelDir: join(m.root, "m"),
      }),
    );
    expect(checks["nvidia-driver"]?.status).toBe("fail");
    expect(checks["nvidia-driver"]?.detail).toMatch(
      /^nvidia-smi exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver\..*; nvml: nvmlInit_v2 failed/,
    );
  });

  it("disk: expands ~ and reports a model dir that cannot be created", async () => {
    const m = await machine();
    const options: PreflightOptions = { port: await freePort(), host: m.host, nvml: NO_NVML, minFreeDiskGb: 0, homeDir: m.root };
    await runPreflight({ ...options, modelDir: "~/.kitt/models" });
    expect(existsSync(join(m.root, ".kitt", "models"))).toBe(true);

    await writeFile(join(m.root, "a-file"), "");
    const checks = byId(await runPreflight({ ...options, modelDir: join(m.root, "a-file", "models") }));
    expect(checks.disk).toEqual({
      status: "warn",
      required: false,
      detail: `cannot create ${join(m.root, "a-file", "models")}: ENOTDIR`,
    });
  });

  it("port: refuses a value that is not a TCP port", async () => {
    const m = await machine();
    const checks = byId(await runPreflight({ host: m.host, nvml: NO_NVML, port: 70_000, modelDir: join(m.root, "m") }));
    expect(checks.port?.detail).toBe("not a TCP port: 70000");
  });
});

describe("NFS utilities check", () => {
  it("finds mount.nfs in /usr/sbin even when PATH lacks it (mount(8) looks there)", async () => {
    const { checkNfs } = await import("./preflight-checks.js");
    const { chmod, mkdir } = await import("node:fs/promises");
    const m = await machine();
    expect((await checkNfs(m.host)).ok).toBe(false);
    await mkdir(join(m.root, "usr", "sbin"), { recursive: true });
    await writeFile(join(m.root, "usr", "sbin", "mount.nfs"), "#!/bin/sh\n");
    await chmod(join(m.root, "usr", "sbin", "mount.nfs"), 0o755);
    expect(await checkNfs(m.host)).toEqual({ ok: true, detail: `mount.nfs at ${join(m.root, "usr", "sbin", "mount.nfs")}` });
  });
});
