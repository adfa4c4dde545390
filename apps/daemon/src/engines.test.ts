import { createServer } from "node:net";
import { join } from "node:path";

import { readFakeEngineCalls, useTempDir, writeFakeEngine } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { AGENT, TOKEN, closeWorld, makeWorld, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
});

const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

type EngineRow = { engine: string; installed: boolean; running: boolean; version?: string; pid?: number; port?: number };

describe("native engines through the agent", () => {
  it("start_engine from the server serves on the asked port; the heartbeat and /api/engines show it; stop_engine on the API stops it", async () => {
    const dir = await tempDir();
    const world = await makeWorld(dir);
    worlds.push(world);
    const engineBin = join(dir, "engine-bin");
    await writeFakeEngine(engineBin, "llama-server", { version: "4120 (fake)", readyDelayMs: 200 });
    const port = await freePort();
    const agent = await world.start({ env: { ...process.env, PATH: `${engineBin}:${process.env.PATH ?? ""}` } });

    const cmd = world.server.queueCommand(AGENT, "start_engine", { engine_name: "llama_cpp", runtime_config: { port, n_ctx: 2048 } });
    await world.server.waitFor(() => world.server.statuses(cmd.test_id).includes("completed"), 20_000);
    expect(world.server.statuses(cmd.test_id)).toEqual(["running", "completed"]);
    const result = world.server.results.find((r) => r.body.command_id === cmd.command_id);
    expect(result?.body).toMatchObject({ status: "completed", result_data: { success: true, port, already_running: false } });
    const pid = Number((result?.body.result_data as Record<string, unknown>).pid);
    expect(alive(pid)).toBe(true);
    // The engine's own output is followed as it comes: its ready line may reach the server just after the result.
    await world.server.waitFor(() => world.server.logLines(cmd.test_id).includes("serving on 127.0.0.1:" + port), 20_000);
    const serve = (await readFakeEngineCalls(engineBin, "llama-server")).find((c) => c.argv[0] !== "--version");
    expect(serve?.argv).toEqual(["--port", String(port), "--host", "0.0.0.0", "--ctx-size", "2048"]);

    // The heartbeat carries the engines (cached probes, refreshed when the start ended).
    await world.server.waitFor(
      () => world.server.heartbeats.some((h) => (h.body.engines as EngineRow[] | undefined)?.some((e) => e.engine === "llama_cpp" && e.running) === true),
      20_000,
    );
    const beat = world.server.heartbeats.findLast((h) => Array.isArray(h.body.engines));
    expect((beat?.body.engines as EngineRow[]).map((e) => e.engine)).toEqual(["ollama", "llama_cpp", "vllm"]);
    expect((beat?.body.engines as EngineRow[])[1]).toEqual({ engine: "llama_cpp", installed: true, running: true, version: "4120 (fake)", binary_path: join(engineBin, "llama-server") });

    const listed = (await (await fetch(`${agent.url}/api/engines`, { headers: auth })).json()) as { engines: EngineRow[] };
    expect(listed.engines.find((e) => e.engine === "llama_cpp")).toMatchObject({ installed: true, running: true, pid, port, ready: true });
    expect((await fetch(`${agent.url}/api/engines`)).status).toBe(401);

    const one = await fetch(`${agent.url}/api/commands`, { method: "POST", headers: auth, body: JSON.stringify({ command_id: "q1", type: "engine_status", payload: { engine_name: "llama_cpp" } }) });
    expect(one.status).toBe(200);
    expect(await one.json()).toMatchObject({ engine: "llama_cpp", running: true, pid, port });

    const stop = await fetch(`${agent.url}/api/commands`, { method: "POST", headers: auth, body: JSON.stringify({ command_id: "s1", type: "stop_engine", payload: { engine_name: "llama_cpp" } }) });
    expect(stop.status).toBe(200);
    expect(await stop.json()).toEqual({ success: true, error: "", pid, stopped_by: "SIGTERM" });
    for (let i = 0; i < 40 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
    expect(alive(pid)).toBe(false);

    const again = await fetch(`${agent.url}/api/commands`, { method: "POST", headers: auth, body: JSON.stringify({ command_id: "s2", type: "stop_engine", payload: { engine_name: "llama_cpp" } }) });
    expect(await again.json()).toEqual({ success: false, error: "llama_cpp is not running" });
  });

  it("a start_engine with a bad runtime_config ends failed naming the key", async () => {
    const world = await makeWorld(await tempDir());
    worlds.push(world);
    await world.start();
    const cmd = world.server.queueCommand(AGENT, "start_engine", { engine_name: "vllm", runtime_config: { gpu_memory_utilization: 2 } });
    await world.server.waitFor(() => world.server.statuses(cmd.test_id).includes("failed"), 20_000);
    const result = world.server.results.find((r) => r.body.command_id === cmd.command_id);
    expect(result?.body.error).toBe("invalid start_engine command: runtime_config.gpu_memory_utilization must be a number above 0 up to 1 (got 2)");
  });
});
