import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { KittServerClient, writeAgentConfig } from "@kitt/protocol";
import { startFakeKittServer, useTempDir, type FakeKittServer } from "@kitt/testkit";

import { cliEnv, runCli } from "./test-cli.js";
import { closedPort, fakeDaemon as startFakeDaemon, type FakeDaemon } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

const TOKEN = "agent-token-0001";

async function fakeDaemon(answer: Parameters<typeof startFakeDaemon>[0]): Promise<FakeDaemon> {
  const daemon = await startFakeDaemon(answer);
  closers.push(() => daemon.close());
  return daemon;
}

async function setup(port: number): Promise<{ home: string; server: FakeKittServer; env: NodeJS.ProcessEnv }> {
  const home = await tempDir();
  const server = await startFakeKittServer({ agents: [{ name: "gpu-01", token: TOKEN }, { name: "gpu-02", token: "other-token" }] });
  closers.push(() => server.close());
  await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { server_url: server.url, token: TOKEN, name: "gpu-01", port });
  return { home, server, env: cliEnv(home) };
}

async function setStatus(server: FakeKittServer, id: string, status: "running" | "completed"): Promise<void> {
  const client = new KittServerClient({ serverUrl: server.url, token: TOKEN, retries: 0 });
  await client.postStatus(id, { status });
  client.close();
}

describe("kitt-agent test list", () => {
  it("lists this agent's tests only, as a table and as JSON, with --status and --limit", async () => {
    const { server, env } = await setup(await closedPort());
    const a = server.queueTest({ agent_name: "gpu-01", model_path: "/models/Qwen2.5-0.5B", engine_name: "vllm", suite_name: "quick" });
    const b = server.queueTest({ agent_name: "gpu-01", model_path: "/models/Llama-3-8B", engine_name: "llama_cpp", suite_name: "quick" });
    server.queueTest({ agent_name: "gpu-02", model_path: "/models/other", engine_name: "vllm", suite_name: "quick" });
    await setStatus(server, a.id, "running");

    const table = await runCli(["test", "list"], env);
    expect(table.stderr).toBe("");
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID +COMMAND +MODEL +ENGINE +STATUS +CREATED$/);
    expect(lines).toHaveLength(3);
    expect(table.stdout).toMatch(new RegExp(`^${a.id} +${a.command_id} +Qwen2.5-0.5B +vllm +running `, "m"));
    expect(table.stdout).not.toContain("/models/other");

    const json = await runCli(["test", "list", "--json", "--status", "queued", "--limit", "5"], env);
    const doc = JSON.parse(json.stdout) as { items: Array<{ id: string }>; total: number };
    expect(doc.items.map((t) => t.id)).toEqual([b.id]);
    const query = server.requests.at(-1)?.url ?? "";
    expect(query).toContain("agent_name=gpu-01");
    expect(query).toContain("per_page=5");

    const bad = await runCli(["test", "list", "--limit", "0"], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trimEnd().split("\n")).toHaveLength(1);
  });

  it("fails with one line (exit 1) when the server is down", async () => {
    const { server, env } = await setup(await closedPort());
    await server.down();
    const r = await runCli(["test", "list"], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: .*(refused|ECONNREFUSED).*\n$/);
    expect(r.stderr).not.toContain(TOKEN);
  });
});

describe("kitt-agent test stop", () => {
  it("marks a running test failed on the server and asks the daemon to cancel it", async () => {
    const daemon = await fakeDaemon(() => ({ status: 202, body: { accepted: true, command_id: "x", state: "cancelling" } }));
    const { server, env } = await setup(daemon.port);
    const row = server.queueTest({ agent_name: "gpu-01", model_path: "/models/q", engine_name: "vllm", suite_name: "quick" });
    await setStatus(server, row.id, "running");
    const r = await runCli(["test", "stop", row.id], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^server +DONE +marked failed \(Cancelled by user\)$/m);
    expect(r.stdout).toMatch(/^daemon +DONE +cancel accepted \(job cancelling\)$/m);
    expect(server.statusUpdates(row.id).at(-1)).toEqual({ status: "failed", error: "Cancelled by user" });
    expect(daemon.calls).toEqual([
      {
        method: "POST",
        url: "/api/commands",
        authorization: `Bearer ${TOKEN}`,
        body: { command_id: `cancel-${row.id}`, type: "cancel", payload: { test_id: row.id } },
      },
    ]);
  });

  it("says so when the daemon is not running, after marking the test on the server", async () => {
    const { server, env } = await setup(await closedPort());
    const row = server.queueTest({ agent_name: "gpu-01", model_path: "/models/q", engine_name: "vllm", suite_name: "quick" });
    const r = await runCli(["test", "stop", row.id, "--json"], env);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { ok: boolean; steps: Array<{ step: string; outcome: string; detail: string }> };
    expect(doc.ok).toBe(true);
    expect(doc.steps.find((s) => s.step === "daemon")).toMatchObject({ outcome: "skipped", detail: expect.stringContaining("not running") });
    expect(server.statuses(row.id)).toEqual(["failed"]);
  });

  it("does nothing for a test that already ended", async () => {
    const daemon = await fakeDaemon(() => ({ status: 500, body: {} }));
    const { server, env } = await setup(daemon.port);
    const row = server.queueTest({ agent_name: "gpu-01", model_path: "/models/q", engine_name: "vllm", suite_name: "quick" });
    await setStatus(server, row.id, "completed");
    const r = await runCli(["test", "stop", row.id], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/already completed: nothing to do/);
    expect(server.statuses(row.id)).toEqual(["completed"]);
    expect(daemon.calls).toEqual([]);
  });

  it("refuses another agent's test, touching nothing", async () => {
    const daemon = await fakeDaemon(() => ({ status: 202, body: {} }));
    const { server, env } = await setup(daemon.port);
    server.queueTest({ agent_name: "gpu-01", model_path: "/models/mine", engine_name: "vllm", suite_name: "quick" });
    const theirs = server.queueTest({ agent_name: "gpu-02", model_path: "/models/q", engine_name: "vllm", suite_name: "quick" });
    const r = await runCli(["test", "stop", theirs.id], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`Error: test ${theirs.id} does not belong to agent gpu-01: refusing to stop it\n`);
    expect(server.statuses(theirs.id)).toEqual([]);
    expect(daemon.calls).toEqual([]);
  });

  it("refuses a test id the daemon could not take (over 64 characters), asking nobody", async () => {
    const daemon = await fakeDaemon(() => ({ status: 202, body: {} }));
    const { server, env } = await setup(daemon.port);
    const long = "a".repeat(65);
    const r = await runCli(["test", "stop", long], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`Error: invalid test id "${long}": expected 1-64 letters, digits, '_' or '-'\n`);
    expect(server.requests).toEqual([]);
    expect(daemon.calls).toEqual([]);
  });

  it("reports an unknown test and a failing daemon", async () => {
    const daemon = await fakeDaemon(() => ({ status: 400, body: { error: "bad cancel" } }));
    const { server, env } = await setup(daemon.port);
    const missing = await runCli(["test", "stop", "0123456789abcdef"], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("Error: test 0123456789abcdef not found on the server\n");
    const row = server.queueTest({ agent_name: "gpu-01", model_path: "/models/q", engine_name: "vllm", suite_name: "quick" });
    const r = await runCli(["test", "stop", row.id], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^daemon +FAILED +HTTP 400: bad cancel$/m);
  });
});
