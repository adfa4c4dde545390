import { mkdir } from "node:fs/promises";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { createEngineDriver } from "@kitt/engines";
import type { ServerCommand } from "@kitt/protocol";
import { readFakeEngineCalls, useTempDir, writeFakeEngine } from "@kitt/testkit";

import { JobRunner } from "./job-runner.js";
import { isAlive, until } from "./test-processes.js";
import { DirResolver, RecordingReporter } from "./test-runner-fixtures.js";

const tempDir = useTempDir(afterEach, "kitt-runner-engines-");
const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // gone
    }
  }
});

async function setup(withEngines = true) {
  const root = await tempDir();
  const bin = join(root, "bin");
  await mkdir(bin, { recursive: true });
  const reporter = new RecordingReporter();
  const runner = new JobRunner({
    resolver: new DirResolver(join(root, "share"), join(root, "staging")),
    reporter,
    workDir: join(root, "work"),
    ...(withEngines
      ? {
          engines: (name) =>
            createEngineDriver(name, { stateDir: join(root, "state"), home: join(root, "home"), env: { PATH: bin }, systemctl: null, pollMs: 50, readyTimeoutMs: 15_000 }),
        }
      : {}),
  });
  return { root, bin, reporter, runner };
}

function engineCommand(id: string, type: string, payload: Record<string, unknown>): ServerCommand {
  return { kind: "unknown", command_id: `c-${id}`, test_id: `t-${id}`, type, payload: { suite_name: "quick", ...payload } };
}

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

describe("JobRunner: engine commands", () => {
  it("start_engine runs in the queue, reports pid and the asked port once serving; stop_engine stops it", async () => {
    const t = await setup();
    await writeFakeEngine(t.bin, "llama-server", { readyDelayMs: 200 });
    const port = await freePort();
    const start = t.runner.submit(engineCommand("1", "start_engine", { engine_name: "llama_cpp", runtime_config: { port, n_gpu_layers: 99 }, model_path: "/models/q.gguf" }));
    expect(start.accepted).toBe(true);
    await t.runner.whenIdle();
    const [result] = t.reporter.results("c-1");
    expect(result).toMatchObject({ command_id: "c-1", status: "completed", error: "", result_data: { success: true, port, already_running: false } });
    const pid = Number(result?.result_data?.pid);
    started.push(pid);
    expect(await isAlive(pid)).toBe(true);
    expect(t.reporter.trail()).toEqual(["status t-1 running", "result c-1 completed", "status t-1 completed"]);
    expect(t.reporter.lines("t-1")).toContain("loading model /models/q.gguf");
    const serve = (await readFakeEngineCalls(t.bin, "llama-server")).find((c) => c.argv[0] !== "--version");
    expect(serve?.argv).toEqual(["--port", String(port), "--host", "0.0.0.0", "--model", "/models/q.gguf", "--n-gpu-layers", "99"]);

    t.runner.submit(engineCommand("2", "stop_engine", { engine_name: "llama_cpp" }));
    await t.runner.whenIdle();
    expect(t.reporter.results("c-2")).toEqual([{ command_id: "c-2", status: "completed", container_id: "", error: "", result_data: { success: true, pid, stopped_by: "SIGTERM" } }]);
    expect(await isAlive(pid)).toBe(false);

    // Nothing runs now: a second stop is a clear failure.
    t.runner.submit(engineCommand("3", "stop_engine", { engine_name: "llama_cpp" }));
    await t.runner.whenIdle();
    expect(t.reporter.statuses("t-3").at(-1)).toEqual({ status: "failed", error: "llama_cpp is not running" });
  });

  it("refuses a bad runtime_config at once, naming the key; nothing starts", async () => {
    const t = await setup();
    await writeFakeEngine(t.bin, "llama-server");
    const res = t.runner.submit(engineCommand("1", "start_engine", { engine_name: "llama_cpp", runtime_config: { threads: 0 } }));
    expect(res).toMatchObject({ accepted: false, error: "invalid start_engine command: runtime_config.threads must be an integer from 1 to 4096 (got 0)" });
    await until(() => t.reporter.statuses("t-1").length > 0, "the refusal reported");
    expect(t.reporter.statuses("t-1")).toEqual([{ status: "failed", error: "invalid start_engine command: runtime_config.threads must be an integer from 1 to 4096 (got 0)" }]);
    expect(await readFakeEngineCalls(t.bin, "llama-server")).toEqual([]);
    expect(t.runner.submit(engineCommand("2", "install_engine", { engine_name: "mlx" }))).toMatchObject({
      accepted: false,
      error: 'invalid install_engine command: payload.engine_name must be one of ollama, llama_cpp, vllm, got "mlx"',
    });
  });

  it("start_engine of an engine that crashes fails with its last line", async () => {
    const t = await setup();
    await writeFakeEngine(t.bin, "ollama", { behaviour: "crash" });
    t.runner.submit(engineCommand("1", "start_engine", { engine_name: "ollama", runtime_config: { port: await freePort() } }));
    await t.runner.whenIdle();
    const [result] = t.reporter.results("c-1");
    expect(result?.status).toBe("failed");
    expect(result?.error).toMatch(/exited with 3 before it served; last output: .*fatal: CUDA error: out of memory \(fake\)$/);
  });

  it("install_engine of an installed engine completes with already_installed and its version", async () => {
    const t = await setup();
    await writeFakeEngine(t.bin, "ollama", { version: "0.5.7" });
    t.runner.submit(engineCommand("1", "install_engine", { engine_name: "ollama" }));
    await t.runner.whenIdle();
    expect(t.reporter.results("c-1")[0]).toMatchObject({
      status: "completed",
      result_data: { success: true, version: "0.5.7", already_installed: true, binary_path: join(t.bin, "ollama") },
    });
    expect(t.reporter.lines("t-1")).toContain("ollama is already installed (version 0.5.7)");
  });

  it("without engines wired, engine commands fail saying so", async () => {
    const t = await setup(false);
    t.runner.submit(engineCommand("1", "install_engine", { engine_name: "vllm" }));
    await t.runner.whenIdle();
    expect(t.reporter.statuses("t-1").at(-1)).toEqual({ status: "failed", error: "native engines are not available on this agent" });
  });
});
