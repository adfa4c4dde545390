import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startFakeKittServer, type FakeKittServer } from "./fake-server.js";
import type { TestRow } from "./fake-server-types.js";
import { call } from "./test-http.js";

const ROW_FIELDS = [
  "id",
  "agent_id",
  "model_path",
  "engine_name",
  "benchmark_name",
  "suite_name",
  "status",
  "command_id",
  "engine_mode",
  "profile_id",
  "created_at",
  "started_at",
  "completed_at",
  "result_id",
  "error",
];
const TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

let server: FakeKittServer;
let clock: Date;

beforeEach(async () => {
  clock = new Date("2026-03-01T10:00:00.000Z");
  server = await startFakeKittServer({ agents: [{ name: "gpu-01", token: "tok-1" }, { name: "gpu-02", token: "tok-2" }], now: () => clock });
});
afterEach(async () => {
  await server.close();
});

function queue(agent = "gpu-01"): TestRow {
  return server.queueTest({ agent_name: agent, model_path: "/models/q", engine_name: "vllm", suite_name: "quick" });
}

describe("create", () => {
  it("creates a queued row over HTTP by agent name or id", async () => {
    const res = await call(server, "POST", "/api/v1/quicktest/", {
      json: { agent_name: "gpu-01", model_path: "/m", engine_name: "llama_cpp", suite_name: "standard", engine_mode: "native", profile_id: "p1" },
    });
    expect(res.status).toBe(201);
    const row = res.json as TestRow;
    expect(Object.keys(row).sort()).toEqual([...ROW_FIELDS].sort());
    expect(row).toMatchObject({
      agent_id: server.agent("gpu-01")?.id,
      status: "queued",
      engine_name: "llama_cpp",
      engine_mode: "native",
      profile_id: "p1",
      created_at: "2026-03-01 10:00:00",
      started_at: null,
      completed_at: null,
      result_id: null,
      error: null,
    });
    expect(row.id).toMatch(/^[0-9a-f]{16}$/);
    expect(row.command_id).toMatch(/^[0-9a-f]{16}$/);
    const byId = await call(server, "POST", "/api/v1/quicktest/", {
      json: { agent_id: server.agent("gpu-02")?.id, model_path: "/m", engine_name: "vllm", suite_name: "quick" },
    });
    expect(byId.status).toBe(201);
    expect(server.tests({ agentName: "gpu-02" })).toHaveLength(1);
  });

  it("rejects missing fields (400), unknown agents (404), bad JSON (400)", async () => {
    const base = { agent_name: "gpu-01", model_path: "/m", engine_name: "vllm", suite_name: "quick" };
    for (const field of ["model_path", "engine_name", "suite_name"]) {
      const json: Record<string, unknown> = { ...base };
      delete json[field];
      const res = await call(server, "POST", "/api/v1/quicktest/", { json });
      expect(res).toMatchObject({ status: 400, json: { error: `'${field}' is required` } });
    }
    const { agent_name: _omit, ...noAgent } = base;
    expect((await call(server, "POST", "/api/v1/quicktest/", { json: noAgent })).status).toBe(400);
    expect(await call(server, "POST", "/api/v1/quicktest/", { json: { ...base, agent_name: "ghost" } })).toMatchObject({
      status: 404,
      json: { error: "Agent not found" },
    });
    expect((await call(server, "POST", "/api/v1/quicktest/", { body: "{", headers: { "Content-Type": "application/json" } })).status).toBe(400);
    expect(server.tests()).toHaveLength(0);
  });
});

describe("list and get", () => {
  it("filters by agent name and status and paginates, newest first", async () => {
    const rows = [queue(), queue(), queue(), queue("gpu-02")];
    server.queueCommand("gpu-01", "cleanup_storage");
    const all = await call(server, "GET", "/api/v1/quicktest/?agent_name=gpu-01&per_page=2&page=1");
    expect(all.json).toMatchObject({ total: 4, page: 1, pages: 2 });
    const items = (all.json as { items: Array<TestRow & { agent_name: string }> }).items;
    expect(items).toHaveLength(2);
    expect(items[0]?.agent_name).toBe("gpu-01");
    expect(items[1]?.id).toBe(rows[2]?.id);
    const page2 = (await call(server, "GET", "/api/v1/quicktest/?agent_name=gpu-01&per_page=2&page=2")).json as { items: TestRow[] };
    expect(page2.items.map((r) => r.id)).toEqual([rows[1]?.id, rows[0]?.id]);

    await call(server, "POST", `/api/v1/quicktest/${rows[0]?.id}/status`, { json: { status: "running" } });
    const running = (await call(server, "GET", "/api/v1/quicktest/?status=running")).json as { items: TestRow[]; total: number };
    expect(running.total).toBe(1);
    expect(running.items[0]?.id).toBe(rows[0]?.id);
  });

  it("clamps per_page to 1..100 and ignores unparsable numbers", async () => {
    for (let i = 0; i < 3; i++) queue();
    expect((await call(server, "GET", "/api/v1/quicktest/?per_page=0")).json).toMatchObject({ pages: 3 });
    expect((await call(server, "GET", "/api/v1/quicktest/?per_page=500")).json).toMatchObject({ pages: 1 });
    expect((await call(server, "GET", "/api/v1/quicktest/?per_page=abc&page=x")).json).toMatchObject({ page: 1, pages: 1, total: 3 });
    expect((await call(server, "GET", "/api/v1/quicktest/?agent_name=nobody")).json).toEqual({ items: [], total: 0, page: 1, pages: 0 });
  });

  it("returns one row with every documented field, 404 when unknown", async () => {
    const row = queue();
    const res = await call(server, "GET", `/api/v1/quicktest/${row.id}`);
    expect(res).toMatchObject({ status: 200, json: row });
    expect(await call(server, "GET", "/api/v1/quicktest/ffffffffffffffff")).toMatchObject({
      status: 404,
      json: { error: "Quick test not found" },
    });
  });
});

describe("logs", () => {
  it("stores lines in arrival order, newlines as they are, with SQL timestamps", async () => {
    const row = queue();
    const lines = ["first", "two\nlines", "", "x".repeat(10_000)];
    for (const line of lines) {
      expect(await call(server, "POST", `/api/v1/quicktest/${row.id}/logs`, { json: { line } })).toMatchObject({ status: 200, json: { ok: true } });
    }
    expect(server.logLines(row.id)).toEqual(lines);
    const res = (await call(server, "GET", `/api/v1/quicktest/${row.id}/logs`)).json as { lines: Array<{ line: string; created_at: string }> };
    expect(res.lines.map((l) => l.line)).toEqual(lines);
    expect(res.lines[0]?.created_at).toMatch(TIMESTAMP);
  });

  it("keeps order under a concurrent flood", async () => {
    const row = queue();
    // Sequential per sender, like the agent's batcher; two senders interleave.
    const send = async (prefix: string): Promise<void> => {
      for (let i = 0; i < 50; i++) await call(server, "POST", `/api/v1/quicktest/${row.id}/logs`, { json: { line: `${prefix}${i}` } });
    };
    await Promise.all([send("a"), send("b")]);
    const got = server.logLines(row.id);
    expect(got).toHaveLength(100);
    expect(got.filter((l) => l.startsWith("a"))).toEqual(Array.from({ length: 50 }, (_, i) => `a${i}`));
  });

  it("answers 400 without a string line and 404 for an unknown test", async () => {
    const row = queue();
    for (const json of [{}, { line: 5 }, { text: "x" }]) {
      expect(await call(server, "POST", `/api/v1/quicktest/${row.id}/logs`, { json })).toMatchObject({
        status: 400,
        json: { error: "'line' is required" },
      });
    }
    const plain = await call(server, "POST", `/api/v1/quicktest/${row.id}/logs`, { body: '{"line":"x"}', headers: { "Content-Type": "text/plain" } });
    expect(plain.status).toBe(400);
    expect((await call(server, "POST", "/api/v1/quicktest/nope/logs", { json: { line: "x" } })).status).toBe(404);
    expect((await call(server, "GET", "/api/v1/quicktest/nope/logs")).status).toBe(404);
    expect(server.logLines(row.id)).toEqual([]);
  });
});

describe("status", () => {
  it("accepts running, completed and failed, setting timestamps and error, in any order", async () => {
    const row = queue();
    const post = (json: unknown) => call(server, "POST", `/api/v1/quicktest/${row.id}/status`, { json });
    expect(await post({ status: "running" })).toMatchObject({ status: 200, json: { ok: true, status: "running" } });
    expect(server.getTest(row.id)).toMatchObject({ status: "running", started_at: "2026-03-01 10:00:00", completed_at: null });
    clock = new Date("2026-03-01T10:05:00.000Z");
    expect((await post({ status: "failed", error: "Exit 3" })).status).toBe(200);
    expect(server.getTest(row.id)).toMatchObject({ status: "failed", completed_at: "2026-03-01 10:05:00", error: "Exit 3" });
    // No order enforced: a completed test can be set running again.
    expect((await post({ status: "running" })).status).toBe(200);
    expect(server.statuses(row.id)).toEqual(["running", "failed", "running"]);
    expect(server.statusUpdates(row.id)[1]).toEqual({ status: "failed", error: "Exit 3" });
  });

  it("rejects other values with 400 and unknown tests with 404", async () => {
    const row = queue();
    for (const json of [{ status: "queued" }, { status: "dispatched" }, { status: "done" }, { status: 1 }, {}]) {
      expect((await call(server, "POST", `/api/v1/quicktest/${row.id}/status`, { json })).status).toBe(400);
    }
    expect((await call(server, "POST", "/api/v1/quicktest/nope/status", { json: { status: "running" } })).status).toBe(404);
    expect(server.getTest(row.id)?.status).toBe("queued");
  });
});

describe("admin token mode", () => {
  it("demands the admin token for create, logs and status; reads stay open", async () => {
    const row = queue();
    server.setAdminToken("admin-secret");
    const logs = `/api/v1/quicktest/${row.id}/logs`;
    expect(await call(server, "POST", logs, { json: { line: "x" }, token: "tok-1" })).toMatchObject({
      status: 403,
      json: { error: "Invalid authentication token" },
    });
    expect((await call(server, "POST", logs, { json: { line: "x" } })).status).toBe(401);
    expect((await call(server, "POST", `/api/v1/quicktest/${row.id}/status`, { json: { status: "running" }, token: "tok-1" })).status).toBe(403);
    expect((await call(server, "POST", logs, { json: { line: "x" }, token: "admin-secret" })).status).toBe(200);
    const create = { agent_name: "gpu-01", model_path: "/m", engine_name: "vllm", suite_name: "quick" };
    expect((await call(server, "POST", "/api/v1/quicktest/", { json: create, token: "tok-1" })).status).toBe(403);
    expect((await call(server, "GET", logs)).status).toBe(200);
    expect(server.logLines(row.id)).toEqual(["x"]);
  });

  it("can be set at start", async () => {
    const admin = await startFakeKittServer({ adminToken: "adm", agents: [{ name: "a", token: "t" }] });
    try {
      const row = admin.queueTest({ agent_name: "a", model_path: "/m", engine_name: "vllm", suite_name: "quick" });
      expect((await call(admin, "POST", `/api/v1/quicktest/${row.id}/status`, { json: { status: "running" }, token: "t" })).status).toBe(403);
    } finally {
      await admin.close();
    }
  });
});
