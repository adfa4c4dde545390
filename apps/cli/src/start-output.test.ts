import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { startFakeKittServer, useTempDir, writeFakeBenchmark, writeFakeModel } from "@kitt/testkit";

import { agentPid, backgroundCleanup, BIN, cliEnv, runCli, startOnTerminal, until } from "./test-cli.js";
import { closedPort } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const { servers, strays } = backgroundCleanup(afterEach);

const AGENT = "gpu-out";
const TOKEN = "out-token-0123456789";
const MODEL = "/data/models/hf/Qwen/Qwen2.5-0.5B-Instruct";

async function world() {
  const home = await tempDir();
  const server = await startFakeKittServer({ agents: [{ name: AGENT, token: TOKEN }] });
  servers.push(server);
  await writeFakeModel(join(home, "share", "hf", "Qwen", "Qwen2.5-0.5B-Instruct"));
  const benchmark = await writeFakeBenchmark(join(home, "bench"), { lines: 3 });
  const storage = { model_storage_dir: join(home, "models"), model_share_mount: join(home, "share"), model_share_source: "nas:/volume1/models" };
  await writeAgentConfig(join(home, ".kitt", "agent.yaml"), {
    server_url: server.url,
    token: TOKEN,
    name: AGENT,
    host: "127.0.0.1",
    port: await closedPort(),
    ...storage,
    heartbeat_interval_s: 10,
    benchmark_command: benchmark,
    execution: "host",
  });
  server.setSettings(AGENT, storage);
  return { home, server, env: cliEnv(home, { NO_COLOR: "1" }) };
}

/** `kitt-agent start ARGS` on a real pseudo-terminal, or on plain pipes; `output()` is stdout and stderr together. */
function start(env: NodeJS.ProcessEnv, args: string[], terminal: boolean): { output: () => string } {
  if (terminal) {
    const t = startOnTerminal(["start", ...args], env);
    strays.push(t.child.pid ?? 0);
    return t;
  }
  const child = spawn(process.execPath, [BIN, "start", ...args], { env, cwd: env.HOME, stdio: ["ignore", "pipe", "pipe"], detached: true });
  strays.push(child.pid ?? 0);
  let text = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (text += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => (text += c));
  return { output: () => text };
}

/** Waits for the agent to start and run the job queued before it started (the first heartbeat takes it). */
async function runOneJob(w: Awaited<ReturnType<typeof world>>, output: () => string, commandId: string): Promise<string> {
  await until(() => /running; local API on/.test(output()), 45_000, "the agent to start");
  strays.push(await agentPid(w.home));
  await until(() => /finished: completed/.test(output()), 30_000, "the job's finished line");
  return commandId;
}

describe("kitt-agent start output", () => {
  it("on a terminal: readable lines, and every job received, started and finished at info", async () => {
    const w = await world();
    const row = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
    const { output } = start(w.env, [], true);
    const cmd = await runOneJob(w, output, row.command_id);
    const lines = output().split(/\r?\n/);
    const line = (re: RegExp) => lines.find((l) => re.test(l));
    expect(line(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} INFO  runner: job ${cmd} received: run_test, test [0-9a-f]{16}, model ${MODEL}, engine vllm, suite quick$`))).toBeDefined();
    expect(line(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} INFO  runner: job ${cmd} \\(test [0-9a-f]{16}\\) started: host pid \\d+$`))).toBeDefined();
    expect(line(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} INFO  runner: job ${cmd} \\(test [0-9a-f]{16}\\) finished: completed, exit code 0, \\d+\\.\\d s, \\d+ log line\\(s\\)$`))).toBeDefined();
    // No JSON record reached the terminal.
    expect(lines.filter((l) => l.startsWith('{"level"'))).toEqual([]);
  });

  it("not on a terminal, or with --log-format json: JSON lines", async () => {
    const w = await world();
    const row = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
    const { output } = start(w.env, [], false);
    const cmd = await runOneJob(w, output, row.command_id);
    const records = output()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: string; component?: string; msg: string });
    expect(records.find((r) => r.msg.startsWith(`job ${cmd} received: run_test`))).toMatchObject({ level: "info", component: "runner" });
    expect(records.find((r) => r.msg.startsWith(`job ${cmd} (test `) && r.msg.includes("finished: completed, exit code 0"))).toMatchObject({ level: "info" });

    const w2 = await world();
    const json = start(w2.env, ["--log-format", "json"], true);
    await until(() => /running; local API on/.test(json.output()), 45_000, "the agent to start");
    strays.push(await agentPid(w2.home));
    expect(json.output()).toMatch(/^\{"level":"info","time":"[^"]+","name":"kitt-agent","msg":"kitt-agent [^"]+ starting as \\"gpu-out\\"/m);
    // The lean daemon's V8 flags, set before the agent loaded, are named in its start record.
    expect(json.output()).toMatch(/starting as .* \(node v\d+\.\d+\.\d+, V8 flags --no-opt --no-maglev --no-sparkplug --optimize-for-size\)"/);
  });

  it("KITT_AGENT_V8_FLAGS: none keeps V8's own; a flag V8 reads only at start-up is refused in one line, exit 2", async () => {
    const w = await world();
    const bad = await runCli(["start"], { ...w.env, KITT_AGENT_V8_FLAGS: "--max-old-space-size=64" });
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(/^Error: KITT_AGENT_V8_FLAGS: "--max-old-space-size=64" is not a flag the agent sets at run time \(/),
    ]);
    expect(w.server.heartbeats).toEqual([]);

    const { output } = start({ ...w.env, KITT_AGENT_V8_FLAGS: "none" }, ["--log-format", "json"], false);
    await until(() => /running; local API on/.test(output()), 45_000, "the agent to start");
    strays.push(await agentPid(w.home));
    expect(output()).toMatch(/starting as .* \(node v[^,]+, V8 flags none\)"/);
  });
});
