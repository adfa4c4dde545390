import { spawn } from "node:child_process";
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { readFakeEngineCalls, useTempDir, writeFakeEngine } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";
import { EngineConfigError, EngineError } from "./errors.js";
import { readProcStat } from "./proc.js";
import { alive, driverIn, freePort } from "./test-helpers.js";

const tempDir = useTempDir(afterEach, "kitt-engines-");
const started: number[] = [];
afterEach(() => {
  // Whatever a failing test left behind.
  for (const pid of started.splice(0)) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

async function failure(promise: Promise<unknown>): Promise<EngineError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EngineError);
  return err as EngineError;
}

async function health(port: number, path: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  await res.arrayBuffer();
  return res.status;
}

describe("discover", () => {
  it("reports an engine that is not on PATH as not installed", async () => {
    const root = await tempDir();
    await mkdir(join(root, "bin"));
    for (const name of ["ollama", "llama_cpp", "vllm"]) {
      expect(await driverIn(root, name).discover()).toEqual({ engine: name, installed: false, binary_path: "", version: "" });
    }
  });

  it("finds each fake engine with its version", async () => {
    const root = await tempDir();
    const bin = join(root, "bin");
    await writeFakeEngine(bin, "ollama", { version: "0.5.7" });
    await writeFakeEngine(bin, "llama-server", { version: "4120 (1a2b3c4d)" });
    await writeFakeEngine(bin, "python", { version: "0.6.3" });
    expect(await driverIn(root, "ollama").discover()).toEqual({ engine: "ollama", installed: true, binary_path: join(bin, "ollama"), version: "0.5.7" });
    expect(await driverIn(root, "llama_cpp").discover()).toMatchObject({ installed: true, binary_path: join(bin, "llama-server"), version: "4120 (1a2b3c4d)" });
    expect(await driverIn(root, "vllm").discover()).toEqual({
      engine: "vllm",
      installed: true,
      binary_path: `${join(bin, "python")} -m vllm`,
      version: "0.6.3",
    });
  });

  it("takes a python without vllm as vLLM not installed", async () => {
    const root = await tempDir();
    await writeFakeEngine(join(root, "bin"), "python", { vllmInstalled: false });
    expect(await driverIn(root, "vllm").discover()).toMatchObject({ installed: false });
  });
});

describe("start, status, stop", () => {
  it("starts llama-server with the mapped flags, waits until it serves, reports the asked port, stops it with TERM", async () => {
    const root = await tempDir();
    const bin = join(root, "bin");
    await writeFakeEngine(bin, "llama-server", { readyDelayMs: 400 });
    const port = await freePort();
    const driver = driverIn(root, "llama_cpp");
    const lines: string[] = [];
    const result = await driver.start({ port, n_gpu_layers: 99, n_ctx: 4096, flash_attn: true }, "/models/q.gguf", { onLine: (l) => lines.push(l) });
    started.push(result.pid);
    expect(result).toMatchObject({ port, already_running: false });
    // Serving when start returns, not merely spawned.
    expect(await health(port, "/health")).toBe(200);
    expect(lines).toContain("loading model /models/q.gguf");
    expect(lines.some((l) => l.startsWith("Starting llama_cpp: "))).toBe(true);
    const serve = (await readFakeEngineCalls(bin, "llama-server")).find((c) => c.argv[0] !== "--version");
    expect(serve?.argv).toEqual(["--port", String(port), "--host", "0.0.0.0", "--model", "/models/q.gguf", "--n-gpu-layers", "99", "--ctx-size", "4096", "--flash-attn", "on"]);
    expect(serve?.pid).toBe(result.pid);

    const status = await driver.status();
    expect(status).toMatchObject({ engine: "llama_cpp", installed: true, running: true, pid: result.pid, port, ready: true, managed_by: "agent" });
    const log = await readFile(result.log_file, "utf8");
    expect(log).toContain("serving on 127.0.0.1:" + port);

    expect(await driver.stop()).toEqual({ pid: result.pid, stopped_by: "SIGTERM" });
    expect(alive(result.pid)).toBe(false);
    expect(await readFile(result.log_file, "utf8")).toContain("received SIGTERM, shutting down");
    expect(await driver.status()).toMatchObject({ running: false, pid: 0, port: 8081, ready: false });
    await expect(driver.stop()).rejects.toMatchObject({ code: "ENGINE_NOT_RUNNING", message: "llama_cpp is not running" });
  });

  it("starts ollama serve with OLLAMA_HOST on the asked port and runtime_config as environment", async () => {
    const root = await tempDir();
    const bin = join(root, "bin");
    await writeFakeEngine(bin, "ollama");
    const port = await freePort();
    const driver = driverIn(root, "ollama");
    const result = await driver.start({ port, OLLAMA_NUM_PARALLEL: 4 }, "");
    started.push(result.pid);
    expect(result.port).toBe(port);
    const serve = (await readFakeEngineCalls(bin, "ollama")).find((c) => c.argv[0] === "serve");
    expect(serve?.env).toEqual({ OLLAMA_HOST: `0.0.0.0:${port}`, OLLAMA_NUM_PARALLEL: "4" });
    expect(await health(port, "/api/version")).toBe(200);
    await driver.stop();
  });

  it("starts vLLM as python -m vllm.entrypoints.openai.api_server", async () => {
    const root = await tempDir();
    const bin = join(root, "bin");
    await writeFakeEngine(bin, "python");
    const port = await freePort();
    const driver = driverIn(root, "vllm");
    const result = await driver.start({ port, gpu_memory_utilization: 0.9, dtype: "bfloat16" }, "/models/Qwen");
    started.push(result.pid);
    const serve = (await readFakeEngineCalls(bin, "python")).find((c) => c.argv[0] === "-m");
    expect(serve?.argv).toEqual([
      "-m", "vllm.entrypoints.openai.api_server", "--port", String(port), "--host", "0.0.0.0", "--model", "/models/Qwen",
      "--gpu-memory-utilization", "0.9", "--dtype", "bfloat16",
    ]);
    await driver.stop();
  });

  it("is a no-op success when the engine already runs, reporting its pid and port", async () => {
    const root = await tempDir();
    await writeFakeEngine(join(root, "bin"), "llama-server", { readyDelayMs: 50 });
    const port = await freePort();
    const driver = driverIn(root, "llama_cpp");
    const first = await driver.start({ port });
    started.push(first.pid);
    const second = await driver.start({ port: 1234 });
    expect(second).toMatchObject({ pid: first.pid, port, already_running: true });
    await driver.stop();
  });

  it("refuses a bad runtime_config naming the key, and starts nothing", async () => {
    const root = await tempDir();
    const bin = join(root, "bin");
    await writeFakeEngine(bin, "llama-server");
    const err = await driverIn(root, "llama_cpp").start({ n_gpu_layers: "all" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineConfigError);
    expect(err).toMatchObject({ key: "n_gpu_layers", message: 'runtime_config.n_gpu_layers must be an integer from -1 to 100000 (got "all")' });
    expect(await readFakeEngineCalls(bin, "llama-server")).toEqual([]);
  });

  it("fails when the engine is not installed", async () => {
    const root = await tempDir();
    await mkdir(join(root, "bin"));
    const err = await failure(driverIn(root, "ollama").start({}));
    expect(err).toMatchObject({ code: "ENGINE_NOT_INSTALLED", message: "ollama is not installed (install_engine installs it)" });
  });

  it("fails with the engine's last lines when it exits at once, leaving no record", async () => {
    const root = await tempDir();
    await writeFakeEngine(join(root, "bin"), "llama-server", { behaviour: "crash" });
    const port = await freePort();
    const driver = driverIn(root, "llama_cpp");
    const err = await failure(driver.start({ port }));
    expect(err.code).toBe("ENGINE_START_FAILED");
    expect(err.message).toMatch(new RegExp(`^llama_cpp \\(pid \\d+, port ${port}\\) exited with 3 before it served; last output: .*fatal: CUDA error: out of memory \\(fake\\)$`));
    expect(err.lastLines.at(-1)).toBe("fatal: CUDA error: out of memory (fake)");
    expect(await driver.status()).toMatchObject({ running: false });
  });

  it("fails when the engine never serves within the bound, and stops it", async () => {
    const root = await tempDir();
    const bin = join(root, "bin");
    await writeFakeEngine(bin, "llama-server", { behaviour: "never-ready" });
    const port = await freePort();
    const driver = driverIn(root, "llama_cpp");
    const err = await failure(driver.start({ port }, "", { readyTimeoutMs: 4_000 }));
    expect(err.code).toBe("ENGINE_NOT_READY");
    expect(err.message).toContain(`did not answer http://127.0.0.1:${port}/health within 4 s; last output: `);
    expect(err.message).toContain("warming up forever");
    const pid = (await readFakeEngineCalls(bin, "llama-server")).find((c) => c.argv[0] !== "--version")?.pid ?? 0;
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
    expect(await driver.status()).toMatchObject({ running: false });
  });

  it("refuses a port another program listens on", async () => {
    const root = await tempDir();
    await writeFakeEngine(join(root, "bin"), "llama-server");
    const squatter = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => squatter.once("listening", r));
    const address = squatter.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    try {
      const err = await failure(driverIn(root, "llama_cpp").start({ port }));
      expect(err).toMatchObject({ code: "ENGINE_PORT_IN_USE" });
      expect(err.message).toBe(`port ${port} is already in use by another program; choose another with runtime_config.port`);
    } finally {
      squatter.close();
    }
  });

  it("kills an engine that ignores TERM after the grace, workers included", async () => {
    const root = await tempDir();
    await writeFakeEngine(join(root, "bin"), "llama-server", { behaviour: "ignore-term", worker: true, readyDelayMs: 50 });
    const port = await freePort();
    const driver = driverIn(root, "llama_cpp", { stopGraceMs: 500 });
    const result = await driver.start({ port });
    started.push(result.pid);
    const worker = Number(/worker (\d+)/.exec(await readFile(result.log_file, "utf8"))?.[1]);
    expect(alive(worker)).toBe(true);
    expect(await driver.stop()).toEqual({ pid: result.pid, stopped_by: "SIGKILL" });
    expect(alive(result.pid)).toBe(false);
    for (let i = 0; i < 40 && alive(worker); i++) await new Promise((r) => setTimeout(r, 50));
    expect(alive(worker)).toBe(false);
    expect(await readFile(result.log_file, "utf8")).toContain("ignoring SIGTERM");
  });
});

describe("after an agent restart", () => {
  it("a new driver on the same state dir sees the engine running and stops it", async () => {
    const root = await tempDir();
    await writeFakeEngine(join(root, "bin"), "ollama", { readyDelayMs: 50 });
    const port = await freePort();
    const result = await driverIn(root, "ollama").start({ port });
    started.push(result.pid);
    const restarted = driverIn(root, "ollama");
    expect(await restarted.status()).toMatchObject({ running: true, pid: result.pid, port, ready: true });
    expect(await restarted.stop()).toMatchObject({ pid: result.pid, stopped_by: "SIGTERM" });
    expect(alive(result.pid)).toBe(false);
  });

  it("a record whose pid now belongs to another process is not taken for the engine, and that process is left alone", async () => {
    const root = await tempDir();
    await mkdir(join(root, "bin"));
    const stranger = spawn(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)"], { stdio: "ignore" });
    const pid = stranger.pid ?? 0;
    try {
      const stat = await readProcStat(pid);
      expect(stat).toBeDefined();
      // The engine that had this pid started earlier than the process that has it now.
      const record = { engine: "llama_cpp", pid, startTime: String(Number(stat?.startTime) - 1), port: 8081, command: ["llama-server"], logFile: "", startedAt: "" };
      await mkdir(join(root, "state", "engines"), { recursive: true });
      await writeFile(join(root, "state", "engines", "llama_cpp.json"), JSON.stringify(record));
      const driver = driverIn(root, "llama_cpp");
      expect(await driver.status()).toMatchObject({ running: false, pid: 0 });
      await expect(driver.stop()).rejects.toMatchObject({ code: "ENGINE_NOT_RUNNING" });
      expect(alive(pid)).toBe(true);
    } finally {
      stranger.kill("SIGKILL");
    }
  });
});

describe("ollama under systemd", () => {
  it("reports the unit's MainPID as running and stops it through systemctl", async () => {
    const root = await tempDir();
    const bin = join(root, "bin");
    await writeFakeEngine(bin, "ollama");
    const systemctl = join(bin, "systemctl");
    const calls = join(root, "systemctl.calls");
    await writeFile(
      systemctl,
      `#!/bin/sh\necho "$*" >> ${calls}\ncase "$1" in\n  is-active) echo active ;;\n  show) echo MainPID=4242 ;;\n  stop) exit 0 ;;\nesac\n`,
      { mode: 0o755 },
    );
    const driver = driverIn(root, "ollama", { systemctl });
    expect(await driver.status()).toMatchObject({ running: true, pid: 4242, port: 11434, managed_by: "systemd" });
    expect(await driver.stop()).toEqual({ pid: 4242, stopped_by: "systemctl" });
    expect(await readFile(calls, "utf8")).toContain("stop ollama\n");
  });
});
