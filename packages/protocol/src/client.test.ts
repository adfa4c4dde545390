import { readFile, readdir } from "node:fs/promises";

import { type FakeKittServer, makeTestPki, startFakeKittServer, useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { ConnectionError, IntegrityError, ServerError } from "./client-errors.js";
import { KittServerClient, type KittServerClientOptions } from "./client.js";
import { ProtocolError } from "./errors.js";
import { MemoryLogger } from "./logger.js";
import type { RegisterRequest, StatusUpdate } from "./messages.js";
import { fixture } from "./test-fixtures.js";

const TOKEN = "s3cret-token-value-42";
const tempDir = useTempDir(afterEach);

const servers: FakeKittServer[] = [];
const clients: KittServerClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(options: Parameters<typeof startFakeKittServer>[0] = {}) {
  const s = await startFakeKittServer({ agents: [{ name: "gpu-node-01", token: TOKEN }], ...options });
  servers.push(s);
  return s;
}

/** A client whose retry sleeps are recorded instead of waited. */
function client(srv: FakeKittServer, extra: Partial<KittServerClientOptions> = {}) {
  const sleeps: number[] = [];
  const logger = new MemoryLogger();
  const c = new KittServerClient({
    serverUrl: srv.url,
    token: TOKEN,
    logger,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...extra,
  });
  clients.push(c);
  return { c, sleeps, logger };
}

const registration = fixture("register-request.json") as RegisterRequest;

async function registered(srv: FakeKittServer) {
  const { c, sleeps, logger } = client(srv);
  const { agent_id } = await c.register(registration);
  return { c, sleeps, logger, agentId: agent_id };
}

async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

describe("KittServerClient over HTTP", () => {
  it("health and version need no token", async () => {
    const srv = await server();
    const { c } = client(srv, { token: "" });
    expect(await c.health()).toEqual({ status: "ok" });
    expect((await c.version()).api_version).toBe("v1");
  });

  it("registers with an exact Bearer header and the documented body", async () => {
    const srv = await server();
    const { c } = client(srv);
    const res = await c.register(registration);
    expect(res.agent_id).toMatch(/^[0-9a-f]{16}$/);
    expect(res.heartbeat_interval_s).toBe(30);
    const req = srv.requests.find((r) => r.path === "/api/v1/agents/register");
    expect(req?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(JSON.parse(req?.body ?? "{}")).toEqual(registration);
  });

  it("refuses to send a malformed registration", async () => {
    const srv = await server();
    const { c } = client(srv);
    await expect(c.register({ name: "", hostname: "h" })).rejects.toThrow("invalid register request: name must NOT have fewer than 1 characters");
    await expect(c.register({ ...registration, hardware_details: "{not json" })).rejects.toThrow(ProtocolError);
    expect(srv.requests).toHaveLength(0);
  });

  it("heartbeats and receives one command at a time with normalised settings", async () => {
    const srv = await server();
    const { c, agentId } = await registered(srv);
    srv.queueTest({ agent_name: "gpu-node-01", model_path: "/m/a", engine_name: "vllm", suite_name: "quick" });
    srv.queueTest({ agent_name: "gpu-node-01", model_path: "/m/b", engine_name: "vllm", suite_name: "quick" });
    srv.setSettings("gpu-node-01", { auto_cleanup: "False", heartbeat_interval_s: "45" });
    const first = await c.heartbeat(agentId, { status: "idle", gpu_utilization_pct: 1.5 });
    const second = await c.heartbeat(agentId, { status: "running" });
    const third = await c.heartbeat(agentId, { status: "running" });
    expect(first.commands.map((x) => x.kind === "run_test" && x.payload.model_path)).toEqual(["/m/a"]);
    expect(second.commands.map((x) => x.kind === "run_test" && x.payload.model_path)).toEqual(["/m/b"]);
    expect(third.commands).toEqual([]);
    expect(first.settings).toMatchObject({ auto_cleanup: false, heartbeat_interval_s: 45 });
    expect(first.agent_id).toBe(agentId);
  });

  it("posts logs, statuses and results that the server stores in order", async () => {
    const srv = await server();
    const { c, agentId } = await registered(srv);
    const row = srv.queueTest({ agent_name: "gpu-node-01", model_path: "/m", engine_name: "vllm", suite_name: "quick" });
    await c.postStatus(row.id, { status: "running" });
    for (let i = 0; i < 5; i++) await c.postLog(row.id, `line ${i}`);
    await c.postLog(row.id, "a\nb");
    await c.postStatus(row.id, { status: "failed", error: "Exit 3" });
    await c.reportResult(agentId, { command_id: row.command_id ?? "x", status: "failed", container_id: "", error: "Exit 3" });
    expect(srv.logLines(row.id)).toEqual(["line 0", "line 1", "line 2", "line 3", "line 4", "a\nb"]);
    expect(srv.statuses(row.id)).toEqual(["running", "failed"]);
    expect(srv.results).toHaveLength(1);
    const fetched = await c.getTest(row.id);
    expect(fetched).toMatchObject({ id: row.id, status: "failed", error: "Exit 3" });
    expect((await c.getTestLogs(row.id)).lines.map((l) => l.line)).toContain("a\nb");
  });

  it("lists tests with filters and validates per_page", async () => {
    const srv = await server();
    const { c } = await registered(srv);
    srv.queueTest({ agent_name: "gpu-node-01", model_path: "/m/1", engine_name: "vllm", suite_name: "quick" });
    srv.queueTest({ agent_name: "gpu-node-01", model_path: "/m/2", engine_name: "ollama", suite_name: "quick" });
    const list = await c.listTests({ agentName: "gpu-node-01", perPage: 1, page: 1 });
    expect(list.total).toBe(2);
    expect(list.items).toHaveLength(1);
    expect(list.items[0]?.agent_name).toBe("gpu-node-01");
    await expect(c.listTests({ perPage: 500 })).rejects.toThrow("per_page must be an integer 1-100, got 500");
  });

  it("refuses a status the server would reject, before sending", async () => {
    const srv = await server();
    const { c } = client(srv);
    await expect(c.postStatus("t1", { status: "dispatched" } as unknown as StatusUpdate)).rejects.toThrow(/status must be one of/);
    await expect(c.postStatus("t1", { status: "failed" } as unknown as StatusUpdate)).rejects.toThrow("error is required");
    expect(srv.requests).toHaveLength(0);
  });

  it.each([
    [404, "Agent not found"],
    [403, "Invalid token for this agent"],
    [400, "Invalid heartbeat payload"],
  ])("never retries %i", async (status, message) => {
    const srv = await server();
    const { c, sleeps } = client(srv);
    srv.failNext(1, status, { error: message });
    const err = await caught(c.heartbeat("abc", { status: "idle" }));
    expect(err).toBeInstanceOf(ServerError);
    expect(err).toMatchObject({ status, method: "POST", path: "/api/v1/agents/abc/heartbeat", serverMessage: message, retryable: false });
    expect(err.message).toBe(`POST /api/v1/agents/abc/heartbeat failed with HTTP ${status}: ${message}`);
    expect(sleeps).toEqual([]);
    expect(srv.requests).toHaveLength(1);
  });

  it("maps the real server's 404 for an unknown agent and 401 without a token", async () => {
    const srv = await server();
    const { c } = client(srv);
    expect(await caught(c.heartbeat("ffffffffffffffff", {}))).toMatchObject({ status: 404, serverMessage: "Agent not found" });
    const anon = client(srv, { token: "" }).c;
    expect(await caught(anon.register(registration))).toMatchObject({ status: 401, serverMessage: "Missing authorization" });
    const wrong = client(srv, { token: "wrong-token" }).c;
    expect(await caught(wrong.register(registration))).toMatchObject({ status: 403 });
  });

  it("retries 503 with capped exponential backoff and jitter, then succeeds", async () => {
    const srv = await server();
    const { c, sleeps, logger } = client(srv, { backoff: { baseMs: 100, maxMs: 250 }, random: () => 1 });
    srv.failNext(3, 503, { error: "maintenance" });
    expect(await c.health()).toEqual({ status: "ok" });
    expect(sleeps).toEqual([100, 200, 250]);
    expect(srv.requests).toHaveLength(4);
    expect(logger.records.filter((r) => r.level === "warn")).toHaveLength(3);
  });

  it("jitter keeps delays within [d/2, d]", async () => {
    const srv = await server();
    const lows = client(srv, { backoff: { baseMs: 1000, maxMs: 60_000 }, random: () => 0 });
    srv.failNext(2, 500);
    await lows.c.health();
    expect(lows.sleeps).toEqual([500, 1000]);
  });

  it("gives up after the retry budget with the last error", async () => {
    const srv = await server();
    const { c, sleeps } = client(srv, { retries: 2 });
    srv.failNext(10, 502, { error: "bad gateway" });
    const err = await caught(c.health());
    expect(err).toMatchObject({ status: 502, retryable: true });
    expect(sleeps).toHaveLength(2);
    expect(srv.requests).toHaveLength(3);
  });

  it("honours Retry-After on 429 and 503, capped by the backoff maximum", async () => {
    const srv = await server();
    const { c, sleeps } = client(srv, { backoff: { baseMs: 100, maxMs: 5000 } });
    srv.failNext(1, 429, { error: "slow down" }, { headers: { "retry-after": "2" } });
    await c.health();
    srv.failNext(1, 503, { error: "maintenance" }, { headers: { "retry-after": "3600" } });
    await c.health();
    expect(sleeps).toEqual([2000, 5000]);
  });

  it("without Retry-After, 429 backs off like a 5xx", async () => {
    const srv = await server();
    const { c, sleeps } = client(srv, { backoff: { baseMs: 100, maxMs: 5000 } });
    srv.failNext(1, 429, { error: "slow down" });
    await c.health();
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toBeGreaterThanOrEqual(50);
    expect(sleeps[0]).toBeLessThanOrEqual(100);
  });

  it("retries a dropped connection", async () => {
    const srv = await server();
    const { c, sleeps } = client(srv);
    srv.dropNext(1);
    expect(await c.health()).toEqual({ status: "ok" });
    expect(sleeps).toHaveLength(1);
  });

  it("reports a server that is down as a ConnectionError after retries, and recovers when it is back", async () => {
    const srv = await server();
    const { c, sleeps } = client(srv, { retries: 1 });
    await srv.down();
    const err = await caught(c.health());
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: "ECONNREFUSED", retryable: true, tls: false });
    expect(err.message).toBe(`GET /api/v1/health failed: connection refused (ECONNREFUSED) talking to ${srv.url}`);
    expect(sleeps).toHaveLength(1);
    await srv.up();
    expect(await c.health()).toEqual({ status: "ok" });
  });

  it("times out a slow answer per call", async () => {
    const srv = await server();
    const { c } = client(srv);
    srv.delayNext(1, 2000);
    const err = await caught(c.health({ timeoutMs: 100, retries: 0 }));
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err).toMatchObject({ code: "ETIMEDOUT", retryable: true });
  });

  it("stops retrying when aborted", async () => {
    const srv = await server();
    const ac = new AbortController();
    const { c } = client(srv, {
      sleep: async () => {
        ac.abort();
      },
    });
    srv.failNext(5, 503);
    const err = await caught(c.health({ signal: ac.signal }));
    expect(srv.requests).toHaveLength(1);
    expect(err).toMatchObject({ code: "ABORTED" });
    expect(err.message).toBe("GET /api/v1/health aborted");
  });

  it("rejects a 2xx body that does not match its schema, naming the field", async () => {
    const srv = await server();
    const { c } = client(srv);
    srv.failNext(1, 201, { heartbeat_interval_s: 30 }, { path: "/api/v1/agents/register" });
    await expect(c.register(registration)).rejects.toThrow("invalid register response: agent_id is required");
    // A heartbeat response is read field by field; only a body that is no object fails as a whole.
    srv.failNext(1, 200, ["nope"]);
    await expect(c.heartbeat("x", {})).rejects.toThrow("invalid heartbeat response: (root) must be an object, got an array");
  });

  it("downloads the agent package and checks its sha256", async () => {
    const srv = await server();
    const { c } = client(srv);
    const data = Buffer.from("pretend this is a tarball ".repeat(1000));
    srv.setAgentPackage(data, "kitt-agent-1.8.0.tgz");
    const dir = await tempDir();
    const pkg = await c.downloadPackage(dir);
    expect(pkg).toMatchObject({ filename: "kitt-agent-1.8.0.tgz", bytes: data.length, sha256: srv.packageDigest().sha256 });
    expect(await readFile(pkg.path)).toEqual(data);
    expect(await readdir(dir)).toEqual(["kitt-agent-1.8.0.tgz"]);
  });

  it("leaves nothing behind when the digest does not match", async () => {
    const srv = await server();
    const { c } = client(srv);
    srv.setAgentPackage(Buffer.from("real"), "kitt-agent.tgz");
    srv.failNext(1, 200, { filename: "kitt-agent.tgz", sha256: "0".repeat(64) }, { path: "/api/v1/agent/package/sha256" });
    const dir = await tempDir();
    const err = await caught(c.downloadPackage(dir));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(await readdir(dir)).toEqual([]);
  });

  it("refuses a package file name that could escape the directory", async () => {
    const srv = await server();
    const { c } = client(srv);
    srv.failNext(1, 200, { filename: "../../etc/cron.d/x", sha256: "0".repeat(64) }, { path: "/api/v1/agent/package/sha256" });
    const dir = await tempDir();
    // basename() drops the directories; what is left must be a safe name.
    srv.setAgentPackage(Buffer.from("x"), "x");
    await expect(c.downloadPackage(dir)).rejects.toBeInstanceOf(IntegrityError);
    expect(await readdir(dir)).toEqual([]);
    srv.failNext(1, 200, { filename: "..", sha256: "0".repeat(64) }, { path: "/api/v1/agent/package/sha256" });
    await expect(c.downloadPackage(dir)).rejects.toThrow(/not a safe file name/);
  });
});

describe("KittServerClient over HTTPS with mTLS", () => {
  async function tlsServer() {
    const pki = await makeTestPki();
    const srv = await server({ tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert } });
    return { srv, pki };
  }

  it("presents the client certificate and verifies the server against the CA", async () => {
    const { srv, pki } = await tlsServer();
    expect(srv.url).toMatch(/^https:/);
    const { c } = client(srv, { tls: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key } });
    const res = await c.register(registration);
    expect(res.agent_id).toMatch(/^[0-9a-f]{16}$/);
    expect(srv.requests.at(-1)?.clientCertCN).toBe(pki.clientCN);
    await c.heartbeat(res.agent_id, { status: "idle" });
  });

  it("a client without a certificate is rejected, without retries", async () => {
    const { srv, pki } = await tlsServer();
    const { c, sleeps } = client(srv, { tls: { ca: pki.ca.cert } });
    const err = await caught(c.health());
    expect(err).toBeInstanceOf(ConnectionError);
    expect(sleeps).toEqual([]);
    expect(srv.requests).toHaveLength(0);
  });

  it("a client certificate from another CA is rejected", async () => {
    const { srv, pki } = await tlsServer();
    const { c } = client(srv, { tls: { ca: pki.ca.cert, cert: pki.otherClient.cert, key: pki.otherClient.key }, retries: 0 });
    expect(await caught(c.health())).toBeInstanceOf(ConnectionError);
    expect(srv.requests).toHaveLength(0);
  });

  it("an untrusted server certificate is a clear, non-retried TLS error; insecure skips the check", async () => {
    const { srv, pki } = await tlsServer();
    const strict = client(srv, { tls: { cert: pki.client.cert, key: pki.client.key } });
    const err = await caught(strict.c.health());
    expect(err).toMatchObject({ tls: true, retryable: false });
    expect(err.message).toMatch(/untrusted|unknown CA|self-signed/);
    expect(strict.sleeps).toEqual([]);
    const loose = client(srv, { tls: { cert: pki.client.cert, key: pki.client.key }, insecure: true });
    expect(await loose.c.health()).toEqual({ status: "ok" });
  });
});

describe("the token stays secret", () => {
  it("appears in no error message and no log line, even when the server echoes it", async () => {
    const srv = await server();
    const { c, logger } = client(srv, { logger: undefined, retries: 1 });
    const debug = new MemoryLogger();
    const loud = client(srv, { logger: debug, retries: 1 }).c;
    const messages: string[] = [];
    srv.failNext(1, 400, { error: `bad token ${TOKEN}` });
    messages.push((await caught(loud.heartbeat("x", {}))).message);
    srv.failNext(2, 503, { error: `overloaded for ${TOKEN}` });
    messages.push((await caught(loud.health())).message);
    srv.failNext(1, 403, `<html>${TOKEN}</html>`);
    messages.push((await caught(c.register(registration))).message);
    await srv.down();
    messages.push((await caught(loud.health())).message);
    const everything = [...messages, debug.text(), logger.text(), ...messages.map((m) => JSON.stringify(m))].join("\n");
    expect(everything).toContain("***");
    expect(everything).not.toContain(TOKEN);
    // The error objects themselves carry no copy of the token either.
    for (const m of messages) expect(m).not.toContain(TOKEN);
  });

  it("error objects serialise without the token", async () => {
    const srv = await server();
    const { c } = client(srv, { retries: 0 });
    await srv.down();
    const err = await caught(c.health());
    const dump = JSON.stringify(err, Object.getOwnPropertyNames(err)) + String(err.stack) + JSON.stringify((err as { cause?: unknown }).cause ?? null);
    expect(dump).not.toContain(TOKEN);
  });
});

describe("client construction", () => {
  it("rejects a bad server URL with a one-line error", () => {
    expect(() => new KittServerClient({ serverUrl: "kitt:8080" })).toThrow(/server URL must be http\(s\)|invalid server URL/);
    expect(() => new KittServerClient({ serverUrl: "not a url" })).toThrow('invalid server URL "not a url"');
  });

  it("keeps connections alive across calls", async () => {
    const srv = await server();
    const { c } = client(srv);
    await c.health();
    await c.health();
    await c.health();
    expect(srv.requests.map((r) => r.headers.connection)).toEqual(["keep-alive", "keep-alive", "keep-alive"]);
    // One TCP connection served all three calls.
    expect(new Set(srv.requests.map((r) => r.remotePort)).size).toBe(1);
  });
});
