/**
 * Benchmarks in the KITT image, against the real Docker engine: the real
 * daemon, the fake KITT server over real HTTP, a KITT test image built
 * locally (busybox + a fake `kitt`), real containers. Skipped with one line
 * when no engine answers; under CI=true a missing engine fails.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createServer, type AddressInfo } from "node:net";
import { promisify } from "node:util";
import { execFile } from "node:child_process";

import { type ContainerRuntime, DockerRuntime } from "@kitt/containers";
import { buildKittTestImage, dockerSuite, removeTestContainers, useTempDir, writeFakeKittBehaviour, type FakeKittBehaviour } from "@kitt/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { SHUTDOWN_REASON } from "./agent.js";
import { killProcessTree, spawnAgent } from "./test-spawn.js";
import { closeWorld, makeWorld, TOKEN, type World } from "./test-agent.js";


async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
const execFileP = promisify(execFile);
const RUN = await dockerSuite();
const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
const names: string[] = [];
const pids: number[] = [];
const docker = new DockerRuntime();
let image = "";
let armImage = "";

afterEach(async () => {
  for (const pid of pids.splice(0)) killProcessTree(pid);
  await Promise.all(worlds.splice(0).map(closeWorld));
});
afterAll(async () => {
  for (const name of names) await removeTestContainers({ "kitt.agent": name });
});

const auth = { authorization: `Bearer ${TOKEN}` };
const MODEL = "/data/models/hf/Qwen/Qwen2.5-0.5B-Instruct";

/** A world whose agent has no `kitt` on the host and a KITT image set on the server. */
async function dockerWorld(behaviour: FakeKittBehaviour, patch: Parameters<typeof makeWorld>[2] = {}, kittImage = image): Promise<World> {
  const name = `dkr-${randomBytes(4).toString("hex")}`;
  names.push(name);
  const dir = await tempDir();
  const w = await makeWorld(dir, {}, { benchmark_command: "kitt-not-on-this-host", execution: "auto", cancel_grace_s: 2, ...patch }, { name });
  worlds.push(w);
  await writeFakeKittBehaviour(join(dir, "share", "hf", "Qwen", "Qwen2.5-0.5B-Instruct"), behaviour);
  if (kittImage !== "") w.server.setSettings(name, { kitt_image: kittImage });
  return w;
}

function queue(w: World) {
  return w.server.queueTest({ agent_name: w.config.name, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
}

async function terminal(w: World, testId: string, timeoutMs = 30_000): Promise<string[]> {
  await w.server.waitFor(() => w.server.statuses(testId).some((s) => s === "completed" || s === "failed"), timeoutMs);
  return w.server.statuses(testId);
}

const lines = (w: World, testId: string) => w.server.logLines(testId).flatMap((l) => l.split("\n"));
const containersOf = (w: World) => docker.listContainers({ "kitt.agent": w.config.name });

async function post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/api/commands`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe.skipIf(!RUN)("benchmarks in the KITT image (real Docker engine)", () => {
  beforeAll(async () => {
    image = await buildKittTestImage();
    armImage = await buildKittTestImage({ arch: "arm64" });
  });

  it("no kitt on the host, kitt_image set: the test runs in a container, every line in order, metrics, container gone", async () => {
    const w = await dockerWorld({ lines: 200, stderrLine: true });
    // An engine image present locally is a capability in the registration.
    const ollamaTag = `ollama/ollama:kitt-e2e-${randomBytes(3).toString("hex")}`;
    await docker.tagImage(image, ollamaTag);
    try {
      await w.start();
    } finally {
      await execFileP("docker", ["rmi", ollamaTag]);
    }
    expect(w.server.registrations[0]?.body.capabilities).toContain("ollama");
    const row = queue(w);
    expect(await terminal(w, row.id)).toEqual(["running", "completed"]);
    const all = lines(w, row.id);
    expect(all).toContain(`The benchmark runs in the KITT image ${image} (amd64)`);
    expect(all.some((l) => l.startsWith(`kitt (fake, container) run: model=${w.config.model_storage_dir}`))).toBe(true);
    expect(all.filter((l) => /^\[\d+\/200\] benchmark step/.test(l))).toEqual(Array.from({ length: 200 }, (_, i) => `[${i + 1}/200] benchmark step ${i + 1}`));
    expect(all).toContain("a warning on stderr");
    await w.server.waitFor(() => w.server.results.length === 1, 5000);
    expect(w.server.results[0]?.body).toMatchObject({ command_id: row.command_id, status: "completed", result_data: { throughput_tokens_per_s: 1234.5, ttft_ms_p50: 42 } });
    expect(await containersOf(w)).toEqual([]);
    expect(w.logText()).toMatch(/started: container kitt-run-/);
  });

  it("an image of another architecture is skipped with a log line, and the job falls back to the host CLI", async () => {
    const w = await dockerWorld({}, { benchmark_command: "kitt" }, armImage);
    // The host CLI is the fake benchmark of the world; kitt:latest is hidden so that the fallback is the host whatever this engine holds.
    const bench = join(w.dir, "bin", "kitt");
    expect(existsSync(bench)).toBe(true);
    await w.start({ env: { ...process.env, PATH: `${join(w.dir, "bin")}:${process.env.PATH ?? ""}` }, containerRuntime: withoutImage(docker, "kitt:latest") });
    const row = queue(w);
    expect(await terminal(w, row.id)).toEqual(["running", "completed"]);
    const all = lines(w, row.id);
    expect(all).toContain(`Skipped: image ${armImage} is built for arm64, this host is amd64`);
    expect(all).toContain("Skipped: image kitt:latest is not present locally");
    expect(all).toContain(`The benchmark runs on the host: ${bench}`);
  });

  it("no image and no host CLI: the job fails naming both and kitt-agent build", async () => {
    const w = await dockerWorld({}, {}, `kitt-absent-${randomBytes(3).toString("hex")}:1`);
    await w.start({ containerRuntime: withoutImage(docker, "kitt:latest") });
    const row = queue(w);
    expect(await terminal(w, row.id)).toEqual(["running", "failed"]);
    const error = w.server.getTest(row.id)?.error ?? "";
    expect(error).toMatch(/not present locally/);
    expect(error).toMatch(/kitt:latest/);
    expect(error).toMatch(/"kitt-not-on-this-host" not found on PATH/);
    expect(error).toMatch(/kitt-agent build/);
  });

  it("test stop: a container ignoring SIGTERM is gone within grace + 5 s, the job ends Cancelled by user", async () => {
    const w = await dockerWorld({ lines: 2, sleepSeconds: 300, ignoreSigterm: true });
    const agent = await w.start();
    const row = queue(w);
    await w.server.waitFor(() => lines(w, row.id).includes("[2/2] benchmark step 2"), 30_000);
    expect(await containersOf(w)).toHaveLength(1);
    const asked = Date.now();
    expect((await post(agent.url, { command_id: `cancel-${row.id}`, type: "cancel", payload: { test_id: row.id } })).status).toBe(202);
    expect(await terminal(w, row.id)).toEqual(["running", "failed"]);
    expect(w.server.getTest(row.id)?.error).toBe("Cancelled by user");
    expect(Date.now() - asked).toBeLessThan((2 + 5) * 1000 + 2000);
    expect(await containersOf(w)).toEqual([]);
  });

  it("shutdown during a containerised run: failed `Agent shutting down`, nothing left", async () => {
    const w = await dockerWorld({ lines: 1, sleepSeconds: 300 });
    const agent = await w.start();
    const row = queue(w);
    await w.server.waitFor(() => lines(w, row.id).includes("[1/1] benchmark step 1"), 30_000);
    await agent.stop();
    expect(w.server.statuses(row.id)).toEqual(["running", "failed"]);
    expect(w.server.getTest(row.id)?.error).toBe(SHUTDOWN_REASON);
    expect(await containersOf(w)).toEqual([]);
  });

  it("server down during a containerised run: every line, the status and the result arrive", async () => {
    const w = await dockerWorld({ lines: 300, sleepSeconds: 2 });
    await w.start();
    const row = queue(w);
    await w.server.waitFor(() => w.server.statuses(row.id).includes("running"), 30_000);
    await w.server.down();
    await new Promise((r) => setTimeout(r, 3000));
    await w.server.up();
    expect(await terminal(w, row.id, 60_000)).toEqual(["running", "completed"]);
    await w.server.waitFor(() => w.server.results.length === 1, 30_000);
    expect(lines(w, row.id).filter((l) => /^\[\d+\/300\]/.test(l))).toHaveLength(300);
    expect(w.server.results[0]?.body).toMatchObject({ status: "completed", result_data: { ttft_ms_p50: 42 } });
    expect(await containersOf(w)).toEqual([]);
  });

  it("an agent SIGKILLed during a containerised run: the restarted agent removes the container and reports the job failed once", async () => {
    const w = await dockerWorld({ lines: 1, sleepSeconds: 300 });
    const configPath = join(w.dir, "config.json");
    await writeFile(configPath, JSON.stringify({ ...w.config, kitt_image: image }));
    const child = spawnAgent(configPath);
    if (child.pid !== undefined) pids.push(child.pid);
    const row = queue(w);
    await w.server.waitFor(() => lines(w, row.id).includes("[1/1] benchmark step 1"), 30_000);
    process.kill(child.pid as number, "SIGKILL");
    await new Promise((r) => child.once("exit", r));
    expect(await containersOf(w)).toHaveLength(1);
    await w.start();
    await w.server.waitFor(() => w.server.statuses(row.id).length === 2 && w.server.results.length === 1, 30_000);
    expect(w.server.statuses(row.id)).toEqual(["running", "failed"]);
    expect(await containersOf(w)).toEqual([]);
    expect(w.logText()).toMatch(/removing container kitt-run-/);
  });
});

describe.skipIf(!RUN)("run_container, stop_container, check_docker (real Docker engine)", () => {
  let serviceImage = "";
  beforeAll(async () => {
    serviceImage = await buildKittTestImage({ entrypoint: null });
  });

  it("run_container from the heartbeat with a health URL: healthy, logs streamed, stop_container stops it, the job completes, nothing left", async () => {
    const w = await dockerWorld({});
    const agent = await w.start();
    // A port the kernel just had free (a random pick could land on another test's server: the health check would pass without httpd).
    const port = await freePort();
    const cmd = w.server.queueCommand(w.config.name, "run_container", {
      image: serviceImage,
      gpu: false,
      extra_args: ["--network", "host"],
      command_args: ["httpd", "-f", "-v", "-p", `127.0.0.1:${port}`, "-h", "/tmp"],
      health_url: `http://127.0.0.1:${port}/`,
      health_timeout_s: 20,
    });
    await w.server.waitFor(() => w.server.logLines(cmd.test_id).join("\n").includes("Container healthy"), 20_000);
    const status = (await (await fetch(`${agent.url}/api/status`, { headers: auth })).json()) as { active_containers: number };
    expect(status.active_containers).toBe(1);
    // httpd logs its answer to the health probe: the container's own output is shipped.
    await w.server.waitFor(() => w.server.logLines(cmd.test_id).some((l) => /: response:404$/.test(l)), 10_000);
    const stop = { command_id: "svc-stop", type: "stop_container", payload: { command_id: cmd.command_id } };
    expect(await post(agent.url, stop)).toEqual({ status: 200, body: { stopped: true } });
    await w.server.waitFor(() => w.server.results.some((r) => r.body.command_id === cmd.command_id) && w.server.statuses(cmd.test_id).length === 2, 20_000);
    const result = w.server.results.find((r) => r.body.command_id === cmd.command_id)?.body;
    expect(result).toMatchObject({ status: "completed", container_id: expect.stringMatching(/^[0-9a-f]{12}$/) });
    expect(w.server.statuses(cmd.test_id)).toEqual(["running", "completed"]);
    expect(await containersOf(w)).toEqual([]);
    expect(await post(agent.url, { ...stop, command_id: "svc-stop2" })).toEqual({ status: 404, body: { error: "No active container for this command" } });
  }, 60_000);

  it("run_container that never becomes healthy fails with `Health check timeout` and leaves nothing", async () => {
    const w = await dockerWorld({});
    const agent = await w.start();
    const accepted = await post(agent.url, {
      command_id: "svc-sick",
      type: "run_container",
      payload: { image: serviceImage, gpu: false, command_args: ["sleep", "300"], health_url: "http://127.0.0.1:9/", health_timeout_s: 2 },
    });
    expect(accepted.status).toBe(202);
    await w.server.waitFor(() => w.server.results.some((r) => r.body.command_id === "svc-sick"), 30_000);
    expect(w.server.results.find((r) => r.body.command_id === "svc-sick")?.body).toMatchObject({ status: "failed", error: "Health check timeout" });
    expect(await containersOf(w)).toEqual([]);
  });

  it("check_docker answers on the call; privileged options are refused with 400", async () => {
    const w = await dockerWorld({});
    const agent = await w.start();
    expect(await post(agent.url, { command_id: "chk", type: "check_docker", payload: {} })).toEqual({ status: 200, body: { available: true } });
    for (const extra of [["--privileged"], ["--pid=host"], ["--cap-add", "SYS_ADMIN"], ["--security-opt", "seccomp=unconfined"], ["--device", "/dev/sda"]]) {
      const r = await post(agent.url, { command_id: `priv-${randomBytes(3).toString("hex")}`, type: "run_container", payload: { image: serviceImage, extra_args: extra } });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatch(/privileged option refused: --/);
    }
    expect(await containersOf(w)).toEqual([]);
  });

  it("check_docker says unavailable when nothing answers on the socket", async () => {
    const w = await dockerWorld({});
    const agent = await w.start({ containerRuntime: new DockerRuntime({ env: { DOCKER_HOST: `unix://${join(w.dir, "no-docker.sock")}` } }) });
    expect(await post(agent.url, { command_id: "chk2", type: "check_docker", payload: {} })).toMatchObject({ status: 200, body: { available: false } });
  });
});

/** The real engine, except that one image reference is reported absent. */
function withoutImage(rt: ContainerRuntime, hidden: string): ContainerRuntime {
  return new Proxy(rt, {
    get(target, prop, receiver) {
      if (prop === "inspectImage") return async (ref: string) => (ref === hidden ? undefined : target.inspectImage(ref));
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
