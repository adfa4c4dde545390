import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { startFakeKittServer, type FakeKittServer } from "./fake-server.js";
import { DEFAULT_SETTINGS } from "./fake-store.js";
import { call } from "./test-http.js";

const REG = { name: "gpu-01", hostname: "gpu-01.lab", port: 8090, gpu_count: 8 };
let server: FakeKittServer;

beforeEach(async () => {
  server = await startFakeKittServer({ agents: [{ name: "gpu-01", token: "tok-1" }] });
});
afterEach(async () => {
  await server.close();
});

async function register(name = "gpu-01", token = "tok-1"): Promise<string> {
  const res = await call(server, "POST", "/api/v1/agents/register", { json: { ...REG, name }, token });
  expect(res.status).toBe(201);
  return (res.json as { agent_id: string }).agent_id;
}

describe("general behaviour", () => {
  it("answers health and version without auth", async () => {
    expect(await call(server, "GET", "/api/v1/health")).toMatchObject({ status: 200, json: { status: "ok" } });
    expect((await call(server, "GET", "/api/v1/version")).json).toEqual({ api_version: "v1", name: "KITT", version: "1.7.0" });
  });

  it("redirects unslashed collection paths with 308, keeping the query", async () => {
    const res = await call(server, "GET", "/api/v1/quicktest?agent_name=x&page=2");
    expect(res.status).toBe(308);
    expect(res.headers.get("location")).toBe("/api/v1/quicktest/?agent_name=x&page=2");
    const post = await call(server, "POST", "/api/v1/quicktest", { json: {} });
    expect(post.status).toBe(308);
    expect((await call(server, "GET", "/api/v1/agents")).headers.get("location")).toBe("/api/v1/agents/");
  });

  it("answers unknown paths 404 and wrong methods 405 with an error body", async () => {
    expect(await call(server, "GET", "/api/v1/nope")).toMatchObject({ status: 404, json: { error: "Not found" } });
    expect(await call(server, "GET", "/api/v1/health/")).toMatchObject({ status: 404 });
    expect(await call(server, "GET", "/api/v1/agents/register")).toMatchObject({ status: 405, json: { error: "Method not allowed" } });
  });

  it("records requests with the Authorization header verbatim", async () => {
    await register();
    const last = server.requests.at(-1);
    expect(last).toMatchObject({ method: "POST", path: "/api/v1/agents/register", fault: null, clientCertCN: null });
    expect(last?.headers.authorization).toBe("Bearer tok-1");
    expect(JSON.parse(last?.body ?? "")).toMatchObject({ name: "gpu-01" });
  });
});

describe("register", () => {
  it("returns 201 with a 16-hex id and an integer interval, and keeps the id on re-registration", async () => {
    const res = await call(server, "POST", "/api/v1/agents/register", { json: REG, token: "tok-1" });
    expect(res.status).toBe(201);
    expect(res.json).toEqual({ agent_id: expect.stringMatching(/^[0-9a-f]{16}$/), heartbeat_interval_s: 30 });
    const id = (res.json as { agent_id: string }).agent_id;
    expect(server.agent("gpu-01")?.id).toBe(id);
    expect(await register()).toBe(id);
    expect(server.registrations).toHaveLength(2);
    expect(server.registrations[0]).toMatchObject({ agentId: id, body: REG, authorization: "Bearer tok-1" });
  });

  it("takes the interval from the agent's settings", async () => {
    server.setSettings("gpu-01", { heartbeat_interval_s: 45 });
    const res = await call(server, "POST", "/api/v1/agents/register", { json: REG, token: "tok-1" });
    expect(res.json).toMatchObject({ heartbeat_interval_s: 45 });
  });

  it("rejects a provisioned name without a token (401), with a lowercase scheme (401), with another token (403)", async () => {
    expect(await call(server, "POST", "/api/v1/agents/register", { json: REG })).toMatchObject({
      status: 401,
      json: { error: "Missing authorization" },
    });
    const lower = await call(server, "POST", "/api/v1/agents/register", { json: REG, headers: { Authorization: "bearer tok-1" } });
    expect(lower.status).toBe(401);
    expect(await call(server, "POST", "/api/v1/agents/register", { json: REG, token: "other" })).toMatchObject({
      status: 403,
      json: { error: "Invalid token for this agent" },
    });
    expect(server.registrations).toHaveLength(0);
  });

  it("trusts an unknown name on first use and binds it to the token sent", async () => {
    const id = await register("newcomer", "fresh");
    expect(server.agent("newcomer")).toMatchObject({ id, token: "fresh" });
    const wrong = await call(server, "POST", "/api/v1/agents/register", { json: { ...REG, name: "newcomer" }, token: "x" });
    expect(wrong.status).toBe(403);
  });

  it("answers 400 for invalid JSON, a non-JSON content type, or missing/mistyped name and hostname", async () => {
    const headers = { "Content-Type": "application/json", Authorization: "Bearer tok-1" };
    expect(await call(server, "POST", "/api/v1/agents/register", { body: "{nope", headers })).toMatchObject({
      status: 400,
      json: { error: "Invalid JSON body" },
    });
    const textBody = await call(server, "POST", "/api/v1/agents/register", {
      body: JSON.stringify(REG),
      headers: { "Content-Type": "text/plain", Authorization: "Bearer tok-1" },
    });
    expect(textBody).toMatchObject({ status: 400, json: { error: "Invalid JSON body" } });
    for (const body of [{ hostname: "h" }, { name: "gpu-01" }, { name: 5, hostname: "h" }, { name: "gpu-01", hostname: ["h"] }]) {
      const res = await call(server, "POST", "/api/v1/agents/register", { json: body, token: "tok-1" });
      expect(res.status).toBe(400);
      expect((res.json as { error: string }).error).toMatch(/^Invalid registration data: /);
    }
  });
});

describe("heartbeat", () => {
  const HB = { status: "idle", current_task: "", gpu_utilization_pct: 37, gpu_memory_used_gb: 12.5, engines: [] };

  it("acks with the canonical id, no commands and the default settings as strings", async () => {
    const id = await register();
    const res = await call(server, "POST", `/api/v1/agents/${id}/heartbeat`, { json: HB, token: "tok-1" });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ ack: true, agent_id: id, commands: [], settings: { ...DEFAULT_SETTINGS } });
    expect(DEFAULT_SETTINGS).toEqual({
      auto_cleanup: "true",
      heartbeat_interval_s: "30",
      kitt_image: "",
      model_share_mount: "",
      model_share_source: "",
      model_storage_dir: "~/.kitt/models",
    });
    expect(server.heartbeats).toEqual([{ agentId: id, idInPath: id, body: HB, commands: [], at: expect.any(Number) }]);
  });

  it("accepts a heartbeat without a body", async () => {
    const id = await register();
    expect((await call(server, "POST", `/api/v1/agents/${id}/heartbeat`, { token: "tok-1" })).status).toBe(200);
  });

  it("resolves an agent name used as id, URL-encoded, to the canonical id", async () => {
    server.provisionAgent("rack 2/gpu", "tok-2");
    const canonical = server.agent("rack 2/gpu")?.id;
    const res = await call(server, "POST", `/api/v1/agents/${encodeURIComponent("rack 2/gpu")}/heartbeat`, { json: {}, token: "tok-2" });
    expect(res).toMatchObject({ status: 200, json: { agent_id: canonical } });
    expect(server.heartbeats[0]?.idInPath).toBe("rack 2/gpu");
  });

  it("answers 404 for an unknown id, 401 without token, 403 with another token", async () => {
    const id = await register();
    expect(await call(server, "POST", "/api/v1/agents/0123456789abcdef/heartbeat", { json: {}, token: "tok-1" })).toMatchObject({
      status: 404,
      json: { error: "Agent not found" },
    });
    expect((await call(server, "POST", `/api/v1/agents/${id}/heartbeat`, { json: {} })).status).toBe(401);
    expect((await call(server, "POST", `/api/v1/agents/${id}/heartbeat`, { json: {}, token: "bad" })).status).toBe(403);
    expect(server.heartbeats).toHaveLength(0);
  });

  it("answers 400 for bad types and invalid JSON", async () => {
    const id = await register();
    const bad = [{ status: 1 }, { gpu_utilization_pct: "37" }, { uptime_s: true }, { engines: {} }, [1, 2]];
    for (const json of bad) {
      const res = await call(server, "POST", `/api/v1/agents/${id}/heartbeat`, { json, token: "tok-1" });
      expect(res).toMatchObject({ status: 400, json: { error: "Invalid heartbeat payload" } });
    }
    const broken = await call(server, "POST", `/api/v1/agents/${id}/heartbeat`, {
      body: "{",
      headers: { "Content-Type": "application/json", Authorization: "Bearer tok-1" },
    });
    expect(broken.status).toBe(400);
  });

  it("hands out at most one command per heartbeat, oldest first, and never resends it", async () => {
    const id = await register();
    const first = server.queueTest({ agent_name: "gpu-01", model_path: "/models/a", engine_name: "vllm", suite_name: "quick" });
    const second = server.queueCommand("gpu-01", "cleanup_storage", { model_path: "/data/models/a" });
    const beat = async (): Promise<unknown[]> =>
      ((await call(server, "POST", `/api/v1/agents/${id}/heartbeat`, { json: {}, token: "tok-1" })).json as { commands: unknown[] }).commands;

    expect(await beat()).toEqual([
      {
        command_id: first.command_id,
        test_id: first.id,
        type: "run_test",
        payload: { model_path: "/models/a", engine_name: "vllm", benchmark_name: "throughput", suite_name: "quick", engine_mode: "docker", profile_id: "" },
      },
    ]);
    expect(server.getTest(first.id)?.status).toBe("dispatched");
    expect(server.getTest(second.test_id)?.status).toBe("queued");
    expect(await beat()).toEqual([second]);
    expect(second).toMatchObject({ test_id: second.command_id, payload: { model_path: "/data/models/a", engine_name: "cleanup", benchmark_name: "cleanup_storage" } });
    expect(await beat()).toEqual([]);
    expect(server.dispatched.map((c) => c.command_id)).toEqual([first.command_id, second.command_id]);
  });

  it("queues cleanup of everything and other command types with runtime_config", async () => {
    const id = await register();
    const cleanup = server.queueCommand("gpu-01", "cleanup_storage");
    const start = server.queueCommand("gpu-01", "start_engine", { engine_name: "vllm", runtime_config: { port: 8000 } });
    expect(cleanup.payload).toMatchObject({ model_path: "__cleanup__" });
    expect(start).toMatchObject({ type: "start_engine", payload: { engine_name: "vllm", runtime_config: { port: 8000 }, suite_name: "quick" } });
    expect(start.test_id).not.toBe(start.command_id);
    expect(server.queueCommand("gpu-01", "stop_engine").payload.runtime_config).toEqual({});
    await call(server, "POST", `/api/v1/agents/${id}/heartbeat`, { json: {}, token: "tok-1" });
    const res = await call(server, "POST", `/api/v1/agents/${id}/heartbeat`, { json: {}, token: "tok-1" });
    expect((res.json as { commands: unknown[] }).commands).toEqual([start]);
  });

  it("sends later settings as strings with Python-style booleans, keeping unknown keys", async () => {
    const id = await register();
    server.setSettings("gpu-01", { auto_cleanup: false, heartbeat_interval_s: 60, model_share_mount: "/mnt/models", future_key: true });
    const res = await call(server, "POST", `/api/v1/agents/${id}/heartbeat`, { json: {}, token: "tok-1" });
    expect((res.json as { settings: unknown }).settings).toEqual({
      ...DEFAULT_SETTINGS,
      auto_cleanup: "False",
      heartbeat_interval_s: "60",
      model_share_mount: "/mnt/models",
      future_key: "True",
    });
  });

  it("throws for queueing to an unknown agent", () => {
    expect(() => server.queueCommand("ghost", "cleanup_storage")).toThrow("Agent not found");
    expect(() => server.setSettings("ghost", { a: "b" })).toThrow("Agent not found");
  });
});

describe("results", () => {
  it("accepts a result with 202 and links it to the test row", async () => {
    const id = await register();
    const row = server.queueTest({ agent_name: "gpu-01", model_path: "/m", engine_name: "vllm", suite_name: "quick" });
    const body = { command_id: row.command_id, status: "completed", container_id: "", error: "", result_data: { tps: 12.5 } };
    const res = await call(server, "POST", `/api/v1/agents/${id}/results`, { json: body, token: "tok-1" });
    expect(res).toMatchObject({ status: 202, json: { accepted: true } });
    expect(server.results).toEqual([{ agentId: id, body }]);
    expect(server.getTest(row.id)?.result_id).toMatch(/^[0-9a-f]{16}$/);
  });

  it("answers 400 for an empty body, 401/403 for auth, 404 for an unknown agent", async () => {
    const id = await register();
    expect((await call(server, "POST", `/api/v1/agents/${id}/results`, { token: "tok-1" })).status).toBe(400);
    expect((await call(server, "POST", `/api/v1/agents/${id}/results`, { json: {}, token: "tok-1" })).status).toBe(400);
    expect((await call(server, "POST", `/api/v1/agents/${id}/results`, { json: { a: 1 } })).status).toBe(401);
    expect((await call(server, "POST", `/api/v1/agents/${id}/results`, { json: { a: 1 }, token: "x" })).status).toBe(403);
    expect((await call(server, "POST", "/api/v1/agents/nobody/results", { json: { a: 1 }, token: "tok-1" })).status).toBe(404);
    expect(server.results).toHaveLength(0);
  });
});

describe("agent package", () => {
  it("serves the package as gzip attachment and its sha256", async () => {
    const res = await fetch(`${server.url}/api/v1/agent/package`);
    const data = Buffer.from(await res.arrayBuffer());
    expect(res.headers.get("content-type")).toBe("application/gzip");
    expect(res.headers.get("content-disposition")).toBe("attachment; filename=kitt-agent-0.0.0-fake.tar.gz");
    expect(gunzipSync(data).length).toBeGreaterThan(0);
    const digest = await call(server, "GET", "/api/v1/agent/package/sha256");
    expect(digest.json).toEqual({ filename: "kitt-agent-0.0.0-fake.tar.gz", sha256: createHash("sha256").update(data).digest("hex") });
  });

  it("serves a package set by the test", async () => {
    const pkg = gzipSync(Buffer.from("new agent"));
    server.setAgentPackage(pkg, "kitt-agent-9.9.9.tar.gz");
    const res = await fetch(`${server.url}/api/v1/agent/package`);
    expect(Buffer.from(await res.arrayBuffer()).equals(pkg)).toBe(true);
    const digest = (await call(server, "GET", "/api/v1/agent/package/sha256")).json;
    expect(digest).toEqual({ filename: "kitt-agent-9.9.9.tar.gz", sha256: createHash("sha256").update(pkg).digest("hex") });
  });
});
