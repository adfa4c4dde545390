import { readFileSync } from "node:fs";
import { once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";

import { useTempDir, writeFakeEngine } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import type { AgentHandle } from "./agent.js";
import { TOKEN, closeWorld, makeWorld, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
const engines: number[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
  // An engine a failed test left serving.
  for (const pid of engines.splice(0)) if (alive(pid)) process.kill(-pid, "SIGKILL");
});

const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

/** A port nothing listens on now (the engine's, in each test). */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  await once(server.close(), "close");
  return port;
}

/** A zombie counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\S+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function command(agent: AgentHandle, body: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${agent.url}/api/commands`, { method: "POST", headers: auth, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

type EngineRow = { engine: string; installed: boolean; running: boolean; pid: number; port: number; ready: boolean; managed_by?: string };

async function listed(agent: AgentHandle, engine: string): Promise<EngineRow | undefined> {
  const body = (await (await fetch(`${agent.url}/api/engines`, { headers: auth })).json()) as { engines: EngineRow[] };
  return body.engines.find((e) => e.engine === engine);
}

/** start_engine through the local API, as `kitt-agent engines start` sends it; resolves with the job's end state. */
async function startEngine(agent: AgentHandle, commandId: string, runtimeConfig: Record<string, unknown>): Promise<string> {
  const queued = await command(agent, { command_id: commandId, type: "start_engine", payload: { engine_name: "llama_cpp", runtime_config: runtimeConfig } });
  expect(queued).toEqual({ status: 202, body: { accepted: true, command_id: commandId } });
  let state = "";
  await until(async () => {
    state = String((await command(agent, { command_id: `${commandId}-q`, type: "status", payload: { command_id: commandId } })).body.state);
    return state === "completed" || state === "failed";
  }, `${commandId} to end`);
  return state;
}

/** The fakes on the agent's PATH: llama-server and ollama serve; the python3 has no vllm. */
async function engineWorld(): Promise<{ world: World; env: NodeJS.ProcessEnv }> {
  const dir = await tempDir();
  const world = await makeWorld(dir);
  worlds.push(world);
  const bin = join(dir, "engine-bin");
  await writeFakeEngine(bin, "llama-server", { version: "4120 (fake)", readyDelayMs: 200 });
  await writeFakeEngine(bin, "ollama", { version: "0.5.7" });
  await writeFakeEngine(bin, "python", { name: "python3", vllmInstalled: false });
  return { world, env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` } };
}

describe("native engines across the agent's life", () => {
  it("/metrics carries one installed and one running gauge per engine, from the probes", async () => {
    const { world, env } = await engineWorld();
    const agent = await world.start({ env });
    const port = await freePort();
    expect(await startEngine(agent, "gauge-start", { port })).toBe("completed");
    engines.push(((await listed(agent, "llama_cpp")) as EngineRow).pid);

    const gauges = async (): Promise<string[]> =>
      (await (await fetch(`${agent.url}/metrics`, { headers: auth })).text()).split("\n").filter((l) => l.startsWith("kitt_agent_engine_"));
    // The probes behind the gauges are refreshed when the start ends (in the background).
    await until(async () => (await gauges()).includes('kitt_agent_engine_running{engine="llama_cpp"} 1'), "the running gauge");
    expect(await gauges()).toEqual([
      'kitt_agent_engine_installed{engine="ollama"} 1',
      'kitt_agent_engine_installed{engine="llama_cpp"} 1',
      'kitt_agent_engine_installed{engine="vllm"} 0',
      'kitt_agent_engine_running{engine="ollama"} 0',
      'kitt_agent_engine_running{engine="llama_cpp"} 1',
      'kitt_agent_engine_running{engine="vllm"} 0',
    ]);

    expect((await command(agent, { command_id: "gauge-stop", type: "stop_engine", payload: { engine_name: "llama_cpp" } })).body.success).toBe(true);
    await until(async () => (await gauges()).includes('kitt_agent_engine_running{engine="llama_cpp"} 0'), "the running gauge to drop");
  });

  it("an engine started through POST /api/commands outlives an agent restart: the new agent shows it running with its pid and port, and stops it", async () => {
    const { world, env } = await engineWorld();
    const first = await world.start({ env });
    const port = await freePort();
    expect(await startEngine(first, "restart-start", { port, n_ctx: 1024 })).toBe("completed");
    const before = (await listed(first, "llama_cpp")) as EngineRow;
    expect(before).toMatchObject({ running: true, port, ready: true, managed_by: "agent" });
    const pid = before.pid;
    engines.push(pid);

    await first.stop();
    // Stopping the agent leaves the engine serving: the operator started it on purpose.
    expect(alive(pid)).toBe(true);
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);

    const beatsBefore = world.server.heartbeats.length;
    const second = await world.start({ env });
    expect(second.url).not.toBe("");
    expect(await listed(second, "llama_cpp")).toMatchObject({ installed: true, running: true, pid, port, ready: true, managed_by: "agent" });
    expect((await command(second, { command_id: "restart-status", type: "engine_status", payload: { engine_name: "llama_cpp" } })).body).toMatchObject({ running: true, pid, port });
    // The new agent's heartbeat says so too.
    await until(
      () => world.server.heartbeats.slice(beatsBefore).some((h) => (h.body.engines as EngineRow[] | undefined)?.some((e) => e.engine === "llama_cpp" && e.running) === true),
      "a heartbeat with llama_cpp running",
    );

    const stopped = await command(second, { command_id: "restart-stop", type: "stop_engine", payload: { engine_name: "llama_cpp" } });
    expect(stopped).toEqual({ status: 200, body: { success: true, error: "", pid, stopped_by: "SIGTERM" } });
    await until(() => !alive(pid), "the engine to exit");
    expect(await listed(second, "llama_cpp")).toMatchObject({ running: false, pid: 0 });
  });
});
