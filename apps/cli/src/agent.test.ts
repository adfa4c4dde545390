import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { startFakeKittServer, useTempDir, writeFakeBenchmark, writeFakeModel } from "@kitt/testkit";

import { alive, backgroundCleanup, cliEnv, runCli, startCliBackground, until } from "./test-cli.js";
import { closedPort } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const { servers, children, strays } = backgroundCleanup(afterEach);

const AGENT = "gpu-e2e";
const TOKEN = "e2e-token-0123456789";
const MODEL = "/data/models/hf/Qwen/Qwen2.5-0.5B-Instruct";

async function world() {
  const home = await tempDir();
  const server = await startFakeKittServer({ agents: [{ name: AGENT, token: TOKEN }] });
  servers.push(server);
  await writeFakeModel(join(home, "share", "hf", "Qwen", "Qwen2.5-0.5B-Instruct"));
  // A benchmark that leaves a grandchild and runs far longer than the test: only a real cancel ends it.
  const benchmark = await writeFakeBenchmark(join(home, "bench"), { lines: 3, grandchild: true, sleepSeconds: 300 });
  const port = await closedPort();
  const storage = { model_storage_dir: join(home, "models"), model_share_mount: join(home, "share"), model_share_source: "nas:/volume1/models" };
  await writeAgentConfig(join(home, ".kitt", "agent.yaml"), {
    server_url: server.url,
    token: TOKEN,
    name: AGENT,
    host: "127.0.0.1",
    port,
    ...storage,
    benchmark_command: benchmark,
    execution: "host",
    cancel_grace_s: 2,
  });
  server.setSettings(AGENT, storage);
  return { home, server, env: cliEnv(home) };
}

describe("start / status / test stop / logs / stop against the real daemon", () => {
  it("runs the daemon in the foreground, cancels a running benchmark for real, and stops on SIGTERM", async () => {
    const { home, server, env } = await world();
    const row = server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
    const agent = await startCliBackground(["start"], env, /running; local API on/);
    children.push(agent);
    await server.waitFor(() => server.statuses(row.id).includes("running"), 30_000);
    await server.waitFor(() => server.logLines(row.id).some((l) => /grandchild \d+/.test(l)), 30_000);
    const grandchild = Number(/grandchild (\d+)/.exec(server.logLines(row.id).join("\n"))?.[1]);
    strays.push(grandchild);
    expect(alive(grandchild)).toBe(true);

    const status = await runCli(["status", "--json"], env);
    expect(status.code).toBe(0);
    const doc = JSON.parse(status.stdout) as { daemon: { running: boolean; status: { running: boolean; name: string } } };
    expect(doc.daemon).toMatchObject({ running: true, status: { running: true, name: AGENT } });

    // The running daemon owns model storage: the list comes from it, and the CLI does not evict beside it.
    const models = await runCli(["models", "list", "--json"], env);
    expect(models.code).toBe(0);
    const usage = JSON.parse(models.stdout) as { storage_dir: string; model_count: number; models: { in_use: boolean }[] };
    expect(usage.model_count).toBe(usage.models.length);
    expect(usage.models.every((m) => m.in_use)).toBe(true);
    const evict = await runCli(["models", "evict", "--all"], env);
    expect(evict.code).toBe(1);
    expect(evict.stderr).toMatch(/^Error: the agent daemon is running \(pid \d+\) and owns .*: stop it first/);

    const second = await runCli(["start"], env);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/^Error: kitt-agent is already running \(pid \d+, .*agent\.pid\); stop it first with kitt-agent stop\n$/);

    const commandId = server.getTest(row.id)?.command_id ?? "";
    const logs = await runCli(["logs", commandId], env);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain("[3/3] benchmark step 3");

    // A follower started now sees the buffered lines, then the end of the job.
    const following = runCli(["logs", commandId, "--follow"], env);
    const stop = await runCli(["test", "stop", row.id], env);
    expect(stop.stderr).toBe("");
    expect(stop.code).toBe(0);
    expect(stop.stdout).toMatch(/^daemon +DONE +cancel accepted/m);
    expect(server.statusUpdates(row.id)).toContainEqual({ status: "failed", error: "Cancelled by user" });
    // The benchmark's whole process group is gone, grandchild included.
    await until(() => !alive(grandchild), 15_000, "the benchmark's grandchild to be killed");
    const followed = await following;
    expect(followed.stdout).toContain("[3/3] benchmark step 3");
    expect(followed.stderr).toMatch(/\(job failed/);
    expect(followed.code).toBe(1);

    const pidFile = join(home, ".kitt", "agent.pid");
    expect(existsSync(pidFile)).toBe(true);
    const stopped = await runCli(["stop", "--timeout", "30"], env);
    expect(stopped.stderr).toBe("");
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toMatch(/^Stopped the agent \(pid \d+\) in \d+\.\d s\.\n$/);
    expect(await agent.exit).toBe(0);
    expect(existsSync(pidFile)).toBe(false);

    const again = await runCli(["stop"], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`Error: the agent is not running (no pid file at ${pidFile})\n`);
    const down = await runCli(["status", "--json"], env);
    expect((JSON.parse(down.stdout) as { daemon: { running: boolean } }).daemon.running).toBe(false);
  });

  it("stop clears a stale pid file and never signals a process that is not a kitt-agent", async () => {
    const home = await tempDir();
    const env = cliEnv(home);
    const pidFile = join(home, ".kitt", "agent.pid");
    await mkdir(join(home, ".kitt"), { recursive: true });

    const gone = spawn("true");
    const gonePid = gone.pid as number;
    await new Promise((r) => gone.on("exit", r));
    await writeFile(pidFile, `${gonePid}\n`);
    const stale = await runCli(["stop"], env);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toBe(`Error: the agent is not running: ${pidFile} named process ${gonePid}, which no longer exists (stale file removed)\n`);
    expect(existsSync(pidFile)).toBe(false);

    const other = spawn("sleep", ["300"], { stdio: "ignore" });
    strays.push(other.pid as number);
    await writeFile(pidFile, `${other.pid}\n`);
    const foreign = await runCli(["stop"], env);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(new RegExp(`^Error: process ${other.pid} named in .* is not a kitt-agent \\(sleep 300\\): not signalled`));
    expect(alive(other.pid as number)).toBe(true);
    expect(existsSync(pidFile)).toBe(true);

    await writeFile(pidFile, "garbage\n");
    const junk = await runCli(["stop"], env);
    expect(junk.code).toBe(1);
    expect(junk.stderr).toMatch(/does not hold a process id/);
  });

  it("start --preflight refuses to start when a required check fails", async () => {
    const { env, home } = await world();
    // Docker is absent for this child whatever this machine has: DOCKER_HOST names a socket that does not
    // exist (the checks ask the engine there), and PATH holds no docker, nvidia-smi or NVIDIA toolkit.
    const bin = join(home, "empty-bin");
    await mkdir(bin, { recursive: true });
    const r = await runCli(["start", "--preflight"], { ...env, PATH: bin, DOCKER_HOST: "unix:///nonexistent/kitt-agent-test/docker.sock" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Docker available +yes +FAIL +Docker is not available at unix:\/\/\/nonexistent\/kitt-agent-test\/docker\.sock: no socket/m);
    expect(r.stderr).toMatch(/Error: preflight failed: not starting \(see the checks above\)\n$/);
    expect(existsSync(join(home, ".kitt", "agent.pid"))).toBe(false);
  });
});
