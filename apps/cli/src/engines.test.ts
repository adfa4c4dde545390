import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readFakeEngineCalls, startFakeKittServer, useTempDir, writeFakeEngine } from "@kitt/testkit";

import { alive, backgroundCleanup, cliEnv, runCli, startCliBackground, until } from "./test-cli.js";
import { closedPort, writeLocalAgentConfig } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const { servers, children, strays } = backgroundCleanup(afterEach);

const AGENT = "gpu-engines";
const TOKEN = "engines-token-0123456789";

type Row = { engine: string; installed: boolean; running: boolean; pid?: number; port?: number; version?: string; ready?: boolean };

/**
 * A configured agent whose PATH holds the testkit fakes: llama-server that
 * serves, an ollama that crashes at start, and a python3 that has vllm.
 */
async function world() {
  const home = await tempDir();
  const bin = join(home, "engine-bin");
  await writeFakeEngine(bin, "llama-server", { version: "4120 (fake)", readyDelayMs: 200 });
  await writeFakeEngine(bin, "ollama", { behaviour: "crash" });
  await writeFakeEngine(bin, "python", { name: "python3", version: "0.6.3-fake" });
  const server = await startFakeKittServer({ agents: [{ name: AGENT, token: TOKEN }] });
  servers.push(server);
  await writeLocalAgentConfig(home, server.url, { name: AGENT, token: TOKEN }, {
    model_storage_dir: join(home, "models"),
  });
  return { home, bin, env: cliEnv(home, {}, [bin]) };
}

async function startAgent(env: NodeJS.ProcessEnv) {
  const agent = await startCliBackground(["start"], env, /running; local API on/);
  children.push(agent);
  return agent;
}

async function list(env: NodeJS.ProcessEnv): Promise<{ source: string; engines: Row[] }> {
  const r = await runCli(["engines", "--json"], env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { source: string; engines: Row[] };
}

describe("kitt-agent engines against the real daemon and the fake engines", () => {
  it("lists, starts (following the engine's output until it serves), installs (already there) and stops through the agent", async () => {
    const { bin, env } = await world();
    await startAgent(env);
    const port = await closedPort();

    const before = await list(env);
    expect(before.source).toBe("daemon");
    expect(before.engines.map((e) => [e.engine, e.installed, e.running])).toEqual([
      ["ollama", true, false],
      ["llama_cpp", true, false],
      ["vllm", true, false],
    ]);

    const started = await runCli(["engines", "start", "llama_cpp", "--port", String(port), "--model", "/data/models/q4.gguf", "--set", "n_ctx=2048", "--set", "flash_attn=on"], env, { timeoutMs: 60_000 });
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toMatch(/^\(start_engine llama_cpp queued on the agent as cli-start-llama_cpp-[0-9a-f]{12}; following its log/);
    // The engine's own output, streamed while it came up, then the outcome.
    expect(started.stdout).toContain("loading model /data/models/q4.gguf");
    expect(started.stdout).toContain(`serving on 127.0.0.1:${port}`);
    const pid = Number(/llama_cpp serves on port (\d+) \(pid (\d+)\)\n$/.exec(started.stdout)?.[2]);
    expect(started.stdout).toMatch(new RegExp(`llama_cpp serves on port ${port} \\(pid ${pid}\\)\\n$`));
    strays.push(pid);
    expect(alive(pid)).toBe(true);
    const serve = (await readFakeEngineCalls(bin, "llama-server")).find((c) => c.argv[0] !== "--version");
    expect(serve?.argv).toEqual(["--port", String(port), "--host", "0.0.0.0", "--model", "/data/models/q4.gguf", "--ctx-size", "2048", "--flash-attn", "on"]);

    const table = await runCli(["engines"], env);
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^ENGINE\s+INSTALLED\s+RUNNING\s+PID\s+PORT\s+VERSION\s+BINARY$/);
    expect(table.stdout).toMatch(new RegExp(`^llama_cpp\\s+yes\\s+yes\\s+${pid}\\s+${port}\\s+4120 \\(fake\\)\\s+${join(bin, "llama-server")}$`, "m"));
    expect(table.stderr).toBe("");

    const installed = await runCli(["engines", "install", "llama_cpp", "--json"], env, { timeoutMs: 60_000 });
    expect(installed.code, installed.stderr).toBe(0);
    expect(JSON.parse(installed.stdout)).toMatchObject({
      engine: "llama_cpp",
      type: "install_engine",
      status: "completed",
      result: { success: true, already_installed: true, version: "4120 (fake)" },
    });

    const stopped = await runCli(["engines", "stop", "llama_cpp", "--json"], env, { timeoutMs: 60_000 });
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(JSON.parse(stopped.stdout)).toEqual({ engine: "llama_cpp", via: "daemon", success: true, error: "", pid, stopped_by: "SIGTERM" });
    await until(() => !alive(pid), 10_000, "the engine to exit");

    const again = await runCli(["engines", "stop", "llama_cpp"], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe("Error: llama_cpp is not running\n");
  });

  it("a start that fails ends with the engine's last lines and exit 1; bad names and settings are one-line usage errors before anything is queued", async () => {
    const { bin, env } = await world();
    await startAgent(env);

    const crashed = await runCli(["engines", "start", "ollama", "--port", String(await closedPort())], env, { timeoutMs: 60_000 });
    expect(crashed.code).toBe(1);
    expect(crashed.stdout).toContain("fatal: CUDA error: out of memory (fake)");
    expect(crashed.stderr.trimEnd().split("\n").at(-1)).toMatch(/^Error: ollama did not start: .*fatal: CUDA error: out of memory \(fake\)/);

    for (const [args, message] of [
      [["engines", "start", "tgi"], 'Error: unknown engine "tgi": expected one of ollama, llama_cpp, vllm'],
      [["engines", "stop", "Ollama"], 'Error: unknown engine "Ollama": expected one of ollama, llama_cpp, vllm'],
      [["engines", "start", "vllm", "--set", "gpu_memory_utilization=2"], "Error: runtime_config.gpu_memory_utilization must be a number above 0 up to 1 (got \"2\")"],
      [["engines", "start", "llama_cpp", "--set", "n_ctx"], 'Error: --set "n_ctx": expected key=value (e.g. --set n_ctx=4096)'],
      [["engines", "start", "llama_cpp", "--set", "context=4096"], "Error: runtime_config.context is not a setting of llama_cpp (known: port, n_gpu_layers, n_ctx, n_batch, threads, flash_attn)"],
      [["engines", "start", "llama_cpp", "--port", "9000", "--set", "port=9001"], "Error: give the port once: --port or --set port=..., not both"],
      [["engines", "start", "llama_cpp", "--port", "70000"], "Error: Parsing --port: Expected an integer less than or equal to 65535 but received: 70000"],
    ] as const) {
      const r = await runCli([...args], env);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 2, stderr: `${message}\n` });
    }
    // Only the crashed ollama was ever started; vllm and llama.cpp were only probed.
    expect((await readFakeEngineCalls(bin, "llama-server")).every((c) => c.argv[0] === "--version")).toBe(true);
    expect((await readFakeEngineCalls(bin, "python3")).every((c) => c.argv[0] === "-c")).toBe(true);
  });

  it("without the agent: the list is probed here, start says the agent must run, and stop works from the agent's record of an engine that outlived it", async () => {
    const { env } = await world();
    const agent = await startAgent(env);
    const port = await closedPort();
    const started = await runCli(["engines", "start", "llama_cpp", "--port", String(port), "--json"], env, { timeoutMs: 60_000 });
    expect(started.code, started.stderr).toBe(0);
    const pid = Number((JSON.parse(started.stdout) as { result: { pid: number } }).result.pid);
    strays.push(pid);

    agent.child.kill("SIGTERM");
    expect(await agent.exit).toBe(0);
    expect(alive(pid)).toBe(true);

    const probed = await list(env);
    expect(probed.source).toBe("probe");
    expect(probed.engines.find((e) => e.engine === "llama_cpp")).toMatchObject({ installed: true, running: true, pid, port, ready: true });
    const table = await runCli(["engines"], env);
    expect(table.stderr).toBe("(the agent is not running: probed by this command)\n");

    const refused = await runCli(["engines", "start", "vllm"], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^Error: the agent daemon is not running \(nothing answers on http:\/\/127\.0\.0\.1:\d+\): start_engine runs through the agent's job queue; start the agent first \(kitt-agent start, or the service\)\n$/);
    const noInstall = await runCli(["engines", "install", "ollama"], env);
    expect(noInstall.code).toBe(1);
    expect(noInstall.stderr).toMatch(/install_engine runs through the agent's job queue/);

    const stopped = await runCli(["engines", "stop", "llama_cpp"], env, { timeoutMs: 60_000 });
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toBe(`llama_cpp stopped (pid ${pid}, SIGTERM) by this command: the agent is not running\n`);
    await until(() => !alive(pid), 10_000, "the engine to exit");
    expect((await list(env)).engines.find((e) => e.engine === "llama_cpp")?.running).toBe(false);
  });
});
