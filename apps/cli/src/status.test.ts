import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { startFakeKittServer, useTempDir, writeFakeBenchmark, writeFakeModel } from "@kitt/testkit";

import { alive, cliEnv, fakeBin, runCli, startCliBackground } from "./test-cli.js";
import { closedPort, fakeDaemon, type FakeDaemon } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const daemons: FakeDaemon[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.close();
  for (const c of closers.splice(0).reverse()) await c();
});

const TOKEN = "status-token-123456";

describe("kitt-agent status", () => {
  it("shows the config with the token masked and says the daemon is not running", async () => {
    const home = await tempDir();
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: "http://kitt:8080", token: TOKEN, name: "gpu-01", port: await closedPort() });
    const env = cliEnv(home, { KITT_AGENT_UNIT_DIR: join(home, "units") });
    const r = await runCli(["status", "--json"], env);
    expect(r.stderr).toBe("");
    // 3: not running, as the LSB init scripts and `systemctl status` say it.
    expect(r.code).toBe(3);
    expect(r.stdout).not.toContain(TOKEN);
    const doc = JSON.parse(r.stdout) as { configured: boolean; state: string; config: { token: string; name: string }; daemon: { running: boolean }; service: { installed: boolean } };
    expect(doc).toMatchObject({ configured: true, state: "not-running" });
    expect(doc).not.toHaveProperty("problem");
    expect(doc.config).toMatchObject({ name: "gpu-01", token: "stat************" });
    expect(doc.daemon.running).toBe(false);
    expect(doc.service.installed).toBe(false);
    const human = await runCli(["status"], env);
    expect(human.code).toBe(3);
    expect(human.stdout).toMatch(/^daemon +not running \(nothing answers on http:\/\/127\.0\.0\.1:\d+\)$/m);
  });

  it("shows what the daemon reports, asked with the token, and the service state", async () => {
    const home = await tempDir();
    const daemon = await fakeDaemon(() => ({
      status: 200,
      // The daemon's shape while its heartbeats fail (the real daemon, healthy, is below).
      body: {
        name: "gpu-01",
        running: true,
        status: "running",
        active_containers: 0,
        active_streams: 1,
        storage: { used_gb: 12.5, free_gb: 800, model_count: 2 },
        jobs: {
          running: [{ command_id: "c-9", test_id: "t-9", type: "run_test", state: "running", created_at: "2020-01-01T00:00:00.000Z", started_at: "2020-01-01T00:00:01.000Z" }],
          queued: [],
        },
        queued: 2,
        version: "0.1.0",
        agent_id: "a-1",
        heartbeat: { agentId: "a-1", health: "failing", lastSuccessAt: Date.now() - 300_000, lastError: "HTTP 503 from the server", consecutiveFailures: 3, intervalS: 30 },
      },
    }));
    daemons.push(daemon);
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: "http://kitt:8080", token: TOKEN, name: "gpu-01", port: daemon.port });
    const units = join(home, "units");
    await mkdir(units);
    await writeFile(join(units, "kitt-agent.service"), "[Service]\n");
    const bin = join(home, "bin");
    await fakeBin(bin, "systemctl", join(home, "calls.log"), `case "$1" in is-active) echo active ;; is-enabled) echo enabled ;; esac`);
    const r = await runCli(["status"], cliEnv(home, { KITT_AGENT_UNIT_DIR: units }, [bin]));
    // It runs, but in error: its heartbeats fail.
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^problem +heartbeats are failing \(HTTP 503 from the server\)$/m);
    expect(r.stdout).toMatch(/^daemon +running on http:\/\/127\.0\.0\.1:\d+, running a job$/m);
    expect(r.stdout).toMatch(/^storage +2 models, 12.5 GiB used, 800 GiB free$/m);
    expect(r.stdout).toMatch(/^job +test t-9 \(command c-9, running, since 2020-01-01T00:00:01.000Z \(\d+ h ago\)\)$/m);
    expect(r.stdout).toMatch(/^queued +2 jobs$/m);
    expect(r.stdout).toMatch(/^heartbeat failing, last success 5 min ago, 3 failed in a row\n {2}last error: HTTP 503 from the server$/m);
    expect(r.stdout).toMatch(/^service +.*kitt-agent.service: enabled, active$/m);
    expect(daemon.calls).toEqual([{ method: "GET", url: "/api/status", authorization: `Bearer ${TOKEN}`, body: undefined }]);
    const json = await runCli(["status", "--json"], cliEnv(home, { KITT_AGENT_UNIT_DIR: units }, [bin]));
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ configured: true, state: "error", problem: "heartbeats are failing (HTTP 503 from the server)", daemon: { running: true } });
  });

  it("exits 1 when the daemon answers something other than its status (a token that is not the daemon's: 401)", async () => {
    const home = await tempDir();
    const daemon = await fakeDaemon(() => ({ status: 401, body: { error: "unauthorized" } }));
    daemons.push(daemon);
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: "http://kitt:8080", token: TOKEN, name: "gpu-01", port: daemon.port });
    const r = await runCli(["status", "--json"], cliEnv(home, { KITT_AGENT_UNIT_DIR: join(home, "units") }));
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ state: "error", problem: expect.stringMatching(/^the daemon answers on http:\/\/127\.0\.0\.1:\d+ but: HTTP 401: unauthorized$/) });
  });

  it("reads the real daemon's status: the running job, the queue and the heartbeat", async () => {
    const home = await tempDir();
    const server = await startFakeKittServer({ agents: [{ name: "gpu-02", token: TOKEN }] });
    closers.push(() => server.close());
    await writeFakeModel(join(home, "share", "hf", "Qwen", "Qwen2.5-0.5B-Instruct"));
    const benchmark = await writeFakeBenchmark(join(home, "bench"), { lines: 1, grandchild: true, sleepSeconds: 300 });
    const storage = { model_storage_dir: join(home, "models"), model_share_mount: join(home, "share"), model_share_source: "nas:/volume1/models" };
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), {
      server_url: server.url,
      token: TOKEN,
      name: "gpu-02",
      host: "127.0.0.1",
      port: await closedPort(),
      ...storage,
      benchmark_command: benchmark,
    execution: "host",
      cancel_grace_s: 1,
    });
    server.setSettings("gpu-02", storage);
    const row = server.queueTest({ agent_name: "gpu-02", model_path: "/data/models/hf/Qwen/Qwen2.5-0.5B-Instruct", engine_name: "vllm", suite_name: "quick" });
    const env = cliEnv(home, { KITT_AGENT_UNIT_DIR: join(home, "units") });
    const agent = await startCliBackground(["start"], env, /running; local API on/);
    closers.push(async () => {
      if (agent.child.exitCode === null) agent.child.kill("SIGKILL");
      const grandchild = Number(/grandchild (\d+)/.exec(server.logLines(row.id).join("\n"))?.[1]);
      if (grandchild > 0 && alive(grandchild)) process.kill(grandchild, "SIGKILL");
    });
    await server.waitFor(() => server.logLines(row.id).some((l) => /grandchild \d+/.test(l)), 30_000);
    const commandId = server.getTest(row.id)?.command_id ?? "";

    const r = await runCli(["status"], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/^problem/m);
    expect(r.stdout).toMatch(/^daemon +running on http:\/\/127\.0\.0\.1:\d+, running a job$/m);
    expect(r.stdout).toMatch(new RegExp(`^job +test ${row.id} \\(command ${commandId}, running, since \\d{4}-\\d\\d-\\d\\dT[^ ]+ \\(\\d+ s ago\\)\\)$`, "m"));
    expect(r.stdout).toMatch(/^queued +0 jobs$/m);
    expect(r.stdout).toMatch(/^heartbeat ok, last success \d+ s ago$/m);
    expect(r.stdout).not.toMatch(/last error/);
    expect(r.stdout).toMatch(/^agent id +\S+$/m);
    const stopped = await runCli(["stop"], env);
    expect(stopped.code).toBe(0);
  });

  it("exits 1 when the real daemon runs but the server rejects its token", async () => {
    const home = await tempDir();
    // The server knows gpu-03 with another token: registration and heartbeats get 403.
    const server = await startFakeKittServer({ agents: [{ name: "gpu-03", token: "the-servers-token-0123" }] });
    closers.push(() => server.close());
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), {
      server_url: server.url,
      token: TOKEN,
      name: "gpu-03",
      host: "127.0.0.1",
      port: await closedPort(),
      model_storage_dir: join(home, "models"),
    });
    const env = cliEnv(home, { KITT_AGENT_UNIT_DIR: join(home, "units") });
    const agent = await startCliBackground(["start"], env, /running; local API on/);
    closers.push(async () => {
      if (agent.child.exitCode === null) agent.child.kill("SIGKILL");
    });
    let last = await runCli(["status", "--json"], env);
    const deadline = Date.now() + 30_000;
    while ((JSON.parse(last.stdout) as { state: string }).state !== "error" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      last = await runCli(["status", "--json"], env);
    }
    expect(last.code).toBe(1);
    expect(JSON.parse(last.stdout)).toMatchObject({
      configured: true,
      state: "error",
      problem: expect.stringMatching(/^the server rejects the agent's token \(.*403.*\): check token in agent\.yaml$/),
      daemon: { running: true },
    });
    const human = await runCli(["status"], env);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^problem +the server rejects the agent's token/m);
    expect((await runCli(["stop"], env)).code).toBe(0);
  });

  it("without agent.yaml: exit 3, and --json is still one document (configured: false)", async () => {
    const home = await tempDir();
    const env = cliEnv(home, { KITT_AGENT_UNIT_DIR: join(home, "units") });
    const path = join(home, ".kitt", "agent.yaml");
    const r = await runCli(["status"], env);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`config   ${path}: not found (run kitt-agent init --server URL first)\ndaemon   not running (no configuration)\nservice  not installed\n`);
    const json = await runCli(["status", "--json"], env);
    expect(json.code).toBe(3);
    expect(json.stderr).toBe("");
    const doc = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(Object.keys(doc).sort()).toEqual(["config", "configured", "daemon", "problem", "service", "state"]);
    expect(doc).toMatchObject({
      configured: false,
      state: "not-configured",
      problem: "not found (run kitt-agent init --server URL first)",
      config: { path },
      daemon: { running: false },
      service: { installed: false, unitPath: join(home, "units", "kitt-agent.service") },
    });
  });

  it("with an invalid agent.yaml: exit 2, and --json is still one document naming the problem", async () => {
    const home = await tempDir();
    const path = join(home, ".kitt", "agent.yaml");
    await mkdir(join(home, ".kitt"), { recursive: true });
    await writeFile(path, "server_url: http://kitt:8080\nport: 99999\n", { mode: 0o600 });
    const json = await runCli(["status", "--json"], cliEnv(home, { KITT_AGENT_UNIT_DIR: join(home, "units") }));
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ configured: false, state: "not-configured", problem: "port must be an integer 1-65535, got 99999", config: { path } });
  });

  it("answered without oclif (the fast path) exactly as oclif answers it (--debug takes oclif's path)", async () => {
    const home = await tempDir();
    const env = cliEnv(home, { KITT_AGENT_UNIT_DIR: join(home, "units") });
    const same = async (args: string[]) => {
      const fast = await runCli(args, env);
      const viaOclif = await runCli([...args, "--debug"], env);
      expect({ code: fast.code, stdout: fast.stdout, stderr: fast.stderr }).toEqual({ code: viaOclif.code, stdout: viaOclif.stdout, stderr: viaOclif.stderr });
      return fast;
    };
    expect((await same(["status"])).code).toBe(3);
    expect((await same(["status", "--json"])).code).toBe(3);
    const path = join(home, ".kitt", "agent.yaml");
    await mkdir(join(home, ".kitt"), { recursive: true });
    await writeFile(path, "server_url: http://kitt:8080\nport: 99999\n", { mode: 0o600 });
    expect((await same(["status", "--json", "-c", path])).code).toBe(2);
    expect((await same(["status", `--config=${path}`])).code).toBe(2);
  });
});
