import { chmod, mkdir, writeFile } from "node:fs/promises";
import net from "node:net";
import { machine as osMachine } from "node:os";
import { join } from "node:path";
import { dockerArch, DockerRuntime } from "@kitt/containers";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { runPreflight } from "./preflight.js";
import type { PreflightOptions, PreflightResult } from "./preflight-types.js";
import { importTinyImage, randomSuffix, realEngineAvailable, removeTags, startFakeDockerEngine, type FakeEngine, type FakeEngineOptions } from "./test-docker.js";
import { makeFakeMachine, type FakeCommand, type FakeMachine } from "./test-host.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const NO_NVML = { libraryPath: "/nonexistent/libnvidia-ml.so.1" };
const WORKING_SMI: FakeCommand = { stdout: "570.86.15, NVIDIA H200\n" };
const CUDA = "nvidia/cuda:12.4.1-base-ubuntu22.04";
const GPU_LINES = "GPU 0: NVIDIA H200 (UUID: GPU-0)\n";
const TOOLKIT_MISSING =
  "the NVIDIA container toolkit is not installed (no nvidia runtime in docker info, none of nvidia-container-runtime-hook, nvidia-container-runtime, nvidia-container-cli, nvidia-ctk on PATH, no CDI spec in /etc/cdi or /var/run/cdi); install nvidia-container-toolkit, run `nvidia-ctk runtime configure --runtime=docker` and restart Docker";

async function machine(dockerHost: string, commands: Record<string, FakeCommand> = {}, os: { machine?: string } = {}): Promise<FakeMachine> {
  const m = await makeFakeMachine({ commands, env: { DOCKER_HOST: dockerHost }, os });
  cleanups.push(() => m.cleanup());
  return m;
}

async function engine(options: FakeEngineOptions): Promise<FakeEngine> {
  const e = await startFakeDockerEngine(options);
  cleanups.push(() => e.close());
  return e;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

type Checks = Record<string, { status: string; detail: string }>;

async function preflight(m: FakeMachine, options: PreflightOptions = {}): Promise<Checks> {
  const result: PreflightResult = await runPreflight({
    host: m.host,
    nvml: NO_NVML,
    port: await freePort(),
    minFreeDiskGb: 0,
    modelDir: join(m.root, "models"),
    ...options,
  });
  return Object.fromEntries(result.checks.map((c) => [c.id, { status: c.status, detail: c.detail }]));
}

describe("Docker available: the real cause when the engine does not answer", () => {
  it("no socket", async () => {
    const checks = await preflight(await machine("unix:///nonexistent/kitt/docker.sock"));
    expect(checks.docker).toEqual({
      status: "fail",
      detail: "Docker is not available at unix:///nonexistent/kitt/docker.sock: no socket (is the Docker engine installed and running?)",
    });
    expect(checks["docker-gpu"]).toEqual({ status: "fail", detail: "not run: Docker is not available" });
    expect(checks["kitt-image"]).toEqual({ status: "warn", detail: "not run: Docker is not available" });
  });

  it("a socket path where nothing listens: connection refused", async () => {
    const m = await machine("unix:///placeholder");
    const path = join(m.root, "docker.sock");
    await writeFile(path, "");
    m.host.env.DOCKER_HOST = `unix://${path}`;
    expect((await preflight(m)).docker).toEqual({
      status: "fail",
      detail: `Docker is not available at unix://${path}: connection refused (is the Docker engine running?)`,
    });
  });

  it("a TCP endpoint that refuses", async () => {
    const port = await freePort();
    expect((await preflight(await machine(`tcp://127.0.0.1:${port}`))).docker).toEqual({
      status: "fail",
      detail: `Docker is not available at tcp://127.0.0.1:${port}: connection refused (is the Docker engine running?)`,
    });
  });

  it.skipIf(process.getuid?.() === 0)("a socket the user may not open: the docker group", async () => {
    const docker = await engine({});
    const socket = docker.dockerHost.slice("unix://".length);
    await chmod(socket, 0o000);
    expect((await preflight(await machine(docker.dockerHost))).docker?.detail).toBe(
      `Docker is not available at ${docker.dockerHost}: permission denied on the socket (add the agent's user to the docker group)`,
    );
  });

  it("a DOCKER_HOST that cannot be used", async () => {
    expect((await preflight(await machine("ssh://gpu-01"))).docker).toEqual({
      status: "fail",
      detail: 'DOCKER_HOST must start with unix:// or tcp://, got "ssh://gpu-01"',
    });
  });

  it("shows the server version, API, platform and endpoint when it answers", async () => {
    const docker = await engine({ version: "20.10.24", apiVersion: "1.41", arch: "arm64" });
    expect((await preflight(await machine(docker.dockerHost))).docker).toEqual({
      status: "pass",
      detail: `Docker server 20.10.24 (API 1.41, linux/arm64) at ${docker.dockerHost}`,
    });
  });
});

describe("Docker GPU access: diagnosis first, then a real container", () => {
  it("no nvidia runtime, no toolkit executables, no CDI spec: the toolkit is not installed, and no container is tried", async () => {
    const docker = await engine({ images: { [CUDA]: {} } });
    const m = await machine(docker.dockerHost, { "nvidia-smi": WORKING_SMI });
    const checks = await preflight(m);
    expect(checks["nvidia-driver"]?.status).toBe("pass");
    expect(checks["docker-gpu"]).toEqual({ status: "fail", detail: TOOLKIT_MISSING });
    expect(docker.requests).not.toContain("POST /containers/create");
  });

  it("no GPU on the host: says so (with the driver check's finding), before anything else", async () => {
    const docker = await engine({ runtimes: ["runc", "nvidia"], images: { [CUDA]: {} } });
    const checks = await preflight(await machine(docker.dockerHost));
    expect(checks["docker-gpu"]).toEqual({
      status: "fail",
      detail: "no usable NVIDIA GPU on this host (no NVIDIA driver: libnvidia-ml.so.1 cannot be loaded and nvidia-smi is not on PATH)",
    });
    expect(docker.requests).not.toContain("POST /containers/create");
  });

  it("neither a GPU nor the toolkit: both causes", async () => {
    const docker = await engine({});
    const checks = await preflight(await machine(docker.dockerHost));
    expect(checks["docker-gpu"]?.detail).toBe(
      `no usable NVIDIA GPU on this host (no NVIDIA driver: libnvidia-ml.so.1 cannot be loaded and nvidia-smi is not on PATH); ${TOOLKIT_MISSING}`,
    );
  });

  it("a remote engine (tcp) is not judged by this host's GPU and toolkit", async () => {
    const docker = await engine({ tcp: true, images: { [CUDA]: {} }, containerOutput: GPU_LINES });
    const checks = await preflight(await machine(docker.dockerHost));
    expect(checks["docker-gpu"]).toEqual({ status: "pass", detail: `1 GPU visible inside containers (${CUDA})` });
  });

  it("the probe image is missing and the registry cannot be reached: says exactly that", async () => {
    const docker = await engine({
      runtimes: ["runc", "nvidia"],
      pullError: 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 10.0.0.53:53: no such host',
    });
    const checks = await preflight(await machine(docker.dockerHost, { "nvidia-smi": WORKING_SMI }));
    expect(checks["docker-gpu"]).toEqual({
      status: "fail",
      detail: `probe image ${CUDA} is not present locally and the registry cannot be reached (Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 10.0.0.53:53: no such host); docker load it, or pull it once the registry is reachable`,
    });
  });

  it("the probe image is missing and the registry does not have it", async () => {
    const docker = await engine({ runtimes: ["runc", "nvidia"], pullError: "manifest for registry.local/cuda:base not found: manifest unknown" });
    const checks = await preflight(await machine(docker.dockerHost, { "nvidia-smi": WORKING_SMI }), { dockerImage: "registry.local/cuda:base" });
    expect(checks["docker-gpu"]?.detail).toBe(
      "probe image registry.local/cuda:base is not present locally and the registry does not serve it (manifest for registry.local/cuda:base not found: manifest unknown)",
    );
  });

  it("pulls a missing probe image, then runs it", async () => {
    const docker = await engine({ runtimes: ["runc", "nvidia"], containerOutput: GPU_LINES });
    const checks = await preflight(await machine(docker.dockerHost, { "nvidia-smi": WORKING_SMI }));
    expect(checks["docker-gpu"]).toEqual({ status: "pass", detail: `1 GPU visible inside containers (${CUDA})` });
    expect(docker.requests).toContain("POST /images/create");
  });

  it("toolkit installed (nvidia-ctk) but Docker has no GPU driver: says to configure and restart Docker", async () => {
    const docker = await engine({
      images: { [CUDA]: {} },
      startError: 'could not select device driver "" with capabilities: [[gpu]]',
    });
    const m = await machine(docker.dockerHost, { "nvidia-smi": WORKING_SMI, "nvidia-ctk": {} });
    const checks = await preflight(m);
    expect(checks["docker-gpu"]).toEqual({
      status: "fail",
      detail: `Docker has no GPU device driver although the NVIDIA container toolkit is installed (${join(m.bin, "nvidia-ctk")}): run \`nvidia-ctk runtime configure --runtime=docker\` and restart Docker (could not select device driver "" with capabilities: [[gpu]])`,
    });
    expect(docker.requests).toContain("DELETE /containers/c0ffee0123456789");
  });

  it("a CDI spec counts as the toolkit; the hook's own error is quoted from its line", async () => {
    const docker = await engine({
      images: { [CUDA]: {} },
      startError:
        "failed to create task for container: OCI runtime create failed: error running hook #0: exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\nnvidia-container-cli: initialization error: nvml error: driver not loaded: unknown",
    });
    const m = await machine(docker.dockerHost, { "nvidia-smi": WORKING_SMI });
    await mkdir(join(m.root, "etc", "cdi"), { recursive: true });
    await writeFile(join(m.root, "etc", "cdi", "nvidia.yaml"), "cdiVersion: 0.5.0\n");
    expect((await preflight(m))["docker-gpu"]).toEqual({
      status: "fail",
      detail: "the NVIDIA container toolkit cannot use the driver: initialization error: nvml error: driver not loaded: unknown",
    });
  });

  it("nvidia-smi failing inside the container is quoted with its exit code", async () => {
    const docker = await engine({
      runtimes: ["runc", "nvidia"],
      images: { [CUDA]: {} },
      containerOutput: "Failed to initialize NVML: Unknown Error\n",
      containerExitCode: 255,
    });
    expect((await preflight(await machine(docker.dockerHost, { "nvidia-smi": WORKING_SMI })))["docker-gpu"]?.detail).toBe(
      `nvidia-smi in the GPU probe container (${CUDA}) exited with code 255: Failed to initialize NVML: Unknown Error`,
    );
  });

  it("bounds a probe container that never ends, and removes it", async () => {
    const docker = await engine({ runtimes: ["runc", "nvidia"], images: { [CUDA]: {} }, containerHangs: true });
    const checks = await preflight(await machine(docker.dockerHost, { "nvidia-smi": WORKING_SMI }), { timeoutsMs: { "docker-gpu": 300 } });
    expect(checks["docker-gpu"]?.detail).toMatch(new RegExp(`^the GPU probe container \\(${CUDA.replace(/\./g, "\\.")}\\) did not finish within \\d+ ms$`));
    expect(docker.requests).toContain("DELETE /containers/c0ffee0123456789");
  });

  it("refuses a probe image that is not an image reference", async () => {
    const docker = await engine({ runtimes: ["runc", "nvidia"] });
    const checks = await preflight(await machine(docker.dockerHost, { "nvidia-smi": WORKING_SMI }), { dockerImage: "--privileged" });
    expect(checks["docker-gpu"]).toEqual({ status: "fail", detail: 'not an image reference: "--privileged"' });
  });
});

describe("KITT Docker image (optional)", () => {
  const images = { "team/kitt:1.7": { id: "sha256:1111111111111111" }, "kitt:latest": { id: "sha256:2222222222222222" } };

  it("the configured kitt_image when present and built for this host", async () => {
    const docker = await engine({ images });
    expect((await preflight(await machine(docker.dockerHost), { kittImage: "team/kitt:1.7" }))["kitt-image"]).toEqual({
      status: "pass",
      detail: "team/kitt:1.7 (linux/amd64, image 111111111111)",
    });
  });

  it("falls back to kitt:latest and names what it skipped", async () => {
    const docker = await engine({ images: { ...images, "team/kitt:1.7": { architecture: "arm64" } } });
    expect((await preflight(await machine(docker.dockerHost), { kittImage: " team/kitt:1.7 " }))["kitt-image"]).toEqual({
      status: "pass",
      detail: "kitt:latest (linux/amd64, image 222222222222); skipped: image team/kitt:1.7 is built for arm64, this host is amd64",
    });
  });

  it("none fits: a warning that says how to get one", async () => {
    const docker = await engine({ images: { "kitt:latest": { architecture: "arm64" } } });
    const checks = await preflight(await machine(docker.dockerHost), { kittImage: "team/kitt:1.7" });
    expect(checks["kitt-image"]).toEqual({
      status: "warn",
      detail:
        "no KITT image: run kitt-agent build (or install the kitt CLI on the host); image team/kitt:1.7 is not present locally; image kitt:latest is built for arm64, this host is amd64",
    });
    const bare = await preflight(await machine(docker.dockerHost, {}, { machine: "aarch64" }));
    expect(bare["kitt-image"]).toEqual({ status: "pass", detail: "kitt:latest (linux/arm64, image 0123456789ab)" });
  });

  it("refuses a kitt_image that is not an image reference, without asking Docker", async () => {
    const docker = await engine({ images });
    for (const bad of ["-v /:/host", "kitt latest", "a//b"]) {
      expect((await preflight(await machine(docker.dockerHost), { kittImage: bad }))["kitt-image"]).toEqual({
        status: "warn",
        detail: `kitt_image is not an image reference: ${JSON.stringify(bad)}`,
      });
    }
    expect((await preflight(await machine(docker.dockerHost), { kittImage: 7 as unknown as string }))["kitt-image"]?.detail).toBe(
      "kitt_image must be a string, got number",
    );
    // Empty means not set: kitt:latest.
    expect((await preflight(await machine(docker.dockerHost), { kittImage: "" }))["kitt-image"]?.status).toBe("pass");
  });
});

const realEngine = await realEngineAvailable("preflight Docker checks");

describe.runIf(realEngine)("against the real Docker engine", () => {
  const kittImage = `kitt-preflight-test-${randomSuffix()}:1`;
  afterAll(() => removeTags(kittImage));
  const dockerHost = process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock";

  it("Docker available passes; the KITT image check finds an imported image; GPU access names the missing GPU", async () => {
    await importTinyImage(kittImage);
    const m = await machine(dockerHost, {}, { machine: osMachine() });
    const checks = await preflight(m, { kittImage });
    expect(checks.docker?.status).toBe("pass");
    expect(checks.docker?.detail).toMatch(new RegExp(`^Docker server \\S+ \\(API [\\d.]+, linux/${dockerArch()}\\) at ${dockerHost.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$`));
    expect(checks["kitt-image"]?.status).toBe("pass");
    expect(checks["kitt-image"]?.detail).toMatch(new RegExp(`^${kittImage.replace(/\./g, "\\.")} \\(linux/${dockerArch()}, image [0-9a-f]{12}\\)`));
    // This machine's GPU facts are the fake machine's: no driver, so no GPU for containers either.
    expect(checks["docker-gpu"]?.detail).toMatch(/^no usable NVIDIA GPU on this host \(no NVIDIA driver: /);
  });

  it("GPU access, past the diagnosis: a real failed pull, then a real container with every GPU, removed after", async () => {
    // This host as far as the diagnosis knows: a driver with a GPU and the toolkit installed.
    const m = await machine(dockerHost, { "nvidia-smi": WORKING_SMI, "nvidia-ctk": {} }, { machine: osMachine() });
    // `.invalid` never resolves: the pull fails the same way on every machine.
    const nowhere = `kitt-no-such-registry.invalid/cuda:${randomSuffix()}`;
    const pull = await preflight(m, { dockerImage: nowhere });
    expect(pull["docker-gpu"]?.detail).toMatch(
      new RegExp(`^probe image ${nowhere.replace(/\./g, "\\.")} is not present locally and the registry cannot be reached \\(.*kitt-no-such-registry\\.invalid.*\\); docker load it`),
    );

    await importTinyImage(kittImage);
    const run = (await preflight(m, { dockerImage: kittImage }))["docker-gpu"];
    const info = await new DockerRuntime().info();
    if (!info.runtimes.includes("nvidia")) {
      // No GPU device driver in this engine: the engine's refusal, named.
      expect(run?.detail).toMatch(/^Docker has no GPU device driver although the NVIDIA container toolkit is installed \(.*nvidia-ctk\): run `nvidia-ctk runtime configure --runtime=docker` and restart Docker \(could not select device driver/);
    }
    expect(await new DockerRuntime().listContainers({ "kitt.preflight": "docker-gpu" })).toEqual([]);
  });
});
