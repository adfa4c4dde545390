import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startFakeKittServer, useTempDir, writeFakeModel } from "@kitt/testkit";

import { alive, backgroundCleanup, cliEnv, explainedBy, runCli, startCliBackground, until } from "./test-cli.js";
import { writeLocalAgentConfig } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const { servers, children } = backgroundCleanup(afterEach);

const AGENT = "gpu-drain";
const TOKEN = "drain-token-0123456789";
const MODEL = "/data/models/hf/Qwen/Qwen2.5-0.5B-Instruct";

/**
 * A benchmark that prints a line, then runs until `gate` exists (the test
 * decides when it ends), or until its own directory is gone: a test that
 * fails half-way never leaves it looping behind.
 */
async function gatedBenchmark(dir: string, gate: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, "kitt");
  await writeFile(path, `#!/bin/sh\necho "benchmark started"\nwhile [ ! -e '${gate}' ] && [ -d '${dir}' ]; do sleep 0.1; done\necho "benchmark done"\n`);
  await chmod(path, 0o755);
  return path;
}

async function world() {
  const home = await tempDir();
  const server = await startFakeKittServer({ agents: [{ name: AGENT, token: TOKEN }] });
  servers.push(server);
  await writeFakeModel(join(home, "share", "hf", "Qwen", "Qwen2.5-0.5B-Instruct"));
  const gate = join(home, "gate");
  const storage = { model_storage_dir: join(home, "models"), model_share_mount: join(home, "share"), model_share_source: "nas:/volume1/models" };
  await writeLocalAgentConfig(home, server.url, { name: AGENT, token: TOKEN }, {
    ...storage,
    benchmark_command: await gatedBenchmark(join(home, "bench"), gate),
    execution: "host",
    cancel_grace_s: 2,
  });
  server.setSettings(AGENT, storage);
  return { home, server, gate, env: cliEnv(home) };
}

function queue(server: Awaited<ReturnType<typeof world>>["server"]) {
  return server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
}

async function daemonStatus(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const r = await runCli(["status", "--json"], env);
  return (JSON.parse(r.stdout) as { daemon: { status?: { status?: string } } }).daemon.status?.status;
}

describe("stop --drain against the real daemon", () => {
  it("takes no new job, lets the running one finish, then stops by itself", async () => {
    const { server, gate, env } = await world();
    const first = queue(server);
    const agent = await startCliBackground(["start"], env, /running; local API on/);
    children.push(agent);
    await explainedBy(agent, server.waitFor(() => server.logLines(first.id).includes("benchmark started"), 30_000));

    const draining = runCli(["stop", "--drain", "--json"], env, { timeoutMs: 60_000 });
    await until(() => /draining: no new jobs/.test(agent.stderr() + agent.stdout()), 15_000, "the agent to log that it drains");
    expect(await daemonStatus(env)).toBe("draining");
    // A test queued now stays on the server: a draining agent asks for no command.
    const second = queue(server);
    // The drain waits for the running benchmark, however long it takes.
    expect(alive(agent.child.pid as number)).toBe(true);

    await writeFile(gate, "");
    const drained = await draining;
    // Progress goes to stderr; stdout holds only the JSON document.
    expect(drained.stderr).toMatch(/^Draining the agent \(pid \d+\): no new jobs; waiting for 1 running and 0 queued job\(s\) to finish \(no limit\)\.\n$/);
    expect(drained.code).toBe(0);
    const doc = JSON.parse(drained.stdout) as Record<string, unknown>;
    expect(doc).toMatchObject({ pid: agent.child.pid, stopped: true, drained: true, running: 1, queued: 0 });
    expect(await agent.exit).toBe(0);

    expect(server.statuses(first.id).at(-1)).toBe("completed");
    expect(server.logLines(first.id)).toContain("benchmark done");
    expect(server.getTest(second.id)?.status).toBe("queued");
    expect(agent.stderr() + agent.stdout()).toMatch(/drained: every accepted job has finished/);
  });

  it("stops as a plain stop does, cancelling the job, when --timeout runs out", async () => {
    const { server, env } = await world();
    const row = queue(server);
    const agent = await startCliBackground(["start"], env, /running; local API on/);
    children.push(agent);
    await explainedBy(agent, server.waitFor(() => server.logLines(row.id).includes("benchmark started"), 30_000));

    const r = await runCli(["stop", "--drain", "--timeout", "1"], env, { timeoutMs: 60_000 });
    expect(r.stderr).toMatch(/^Draining the agent \(pid \d+\): no new jobs; waiting for 1 running and 0 queued job\(s\) to finish \(at most 1 s\)\.\n$/);
    expect(r.stdout).toMatch(/^The jobs did not finish within 1 s: stopped the agent \(pid \d+\), cancelling what still ran, in \d+\.\d s\.\n$/);
    expect(r.code).toBe(0);
    expect(await agent.exit).toBe(0);
    expect(server.statuses(row.id).at(-1)).toBe("failed");
  });

  it("an idle agent drains at once, and a second stop --drain finds nothing to stop", async () => {
    const { env } = await world();
    const agent = await startCliBackground(["start"], env, /running; local API on/);
    children.push(agent);
    const r = await runCli(["stop", "--drain"], env, { timeoutMs: 60_000 });
    expect(r.stdout).toMatch(/^Drained and stopped the agent \(pid \d+\) in \d+\.\d s\.\n$/);
    expect(r.code).toBe(0);
    expect(await agent.exit).toBe(0);
    const again = await runCli(["stop", "--drain"], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^Error: the agent is not running \(no pid file at .*agent\.pid\)\n$/);
  });
});
