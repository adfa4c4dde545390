import { afterEach, beforeEach, describe, expect, it } from "vitest";
import http from "node:http";
import { startFakeKittServer, type FakeKittServer } from "./fake-server.js";
import { call, waitFor } from "./test-http.js";

let server: FakeKittServer;

beforeEach(async () => {
  server = await startFakeKittServer({ agents: [{ name: "gpu-01", token: "tok-1" }] });
});
afterEach(async () => {
  await server.close();
});

const health = (): ReturnType<typeof call> => call(server, "GET", "/api/v1/health");

/** The low-level error code behind a failed fetch (ECONNREFUSED, UND_ERR_SOCKET, ...). */
async function fetchFailure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return cause?.code ?? String(error);
  }
  throw new Error("expected the request to fail");
}

describe("failNext", () => {
  it("answers the next n requests with the status and body, then recovers", async () => {
    server.failNext(2, 503, { error: "Service Unavailable" });
    expect(await health()).toMatchObject({ status: 503, json: { error: "Service Unavailable" } });
    expect(await health()).toMatchObject({ status: 503 });
    expect(await health()).toMatchObject({ status: 200, json: { status: "ok" } });
    expect(server.requests.map((r) => r.fault)).toEqual(["fail", "fail", null]);
  });

  it("uses a default error body and sends string bodies as they are", async () => {
    server.failNext(1, 500);
    expect((await health()).json).toEqual({ error: "Injected failure" });
    server.failNext(1, 502, "<html>bad gateway</html>");
    expect((await health()).text).toBe("<html>bad gateway</html>");
  });

  it("only fails requests that match method and path", async () => {
    const id = (await call(server, "POST", "/api/v1/agents/register", { json: { name: "gpu-01", hostname: "h" }, token: "tok-1" })).json as {
      agent_id: string;
    };
    server.failNext(1, 429, { error: "slow down" }, { method: "POST", path: /\/heartbeat$/ });
    expect((await health()).status).toBe(200);
    expect((await call(server, "GET", `/api/v1/agents/${id.agent_id}/heartbeat`)).status).toBe(405);
    expect((await call(server, "POST", `/api/v1/agents/${id.agent_id}/heartbeat`, { json: {}, token: "tok-1" })).status).toBe(429);
    expect(server.heartbeats).toHaveLength(0);
    expect((await call(server, "POST", `/api/v1/agents/${id.agent_id}/heartbeat`, { json: {}, token: "tok-1" })).status).toBe(200);
  });

  it("a failed heartbeat does not consume a queued command", async () => {
    server.queueTest({ agent_name: "gpu-01", model_path: "/m", engine_name: "vllm", suite_name: "quick" });
    server.failNext(1, 503, undefined, { path: "/api/v1/agents/gpu-01/heartbeat" });
    expect((await call(server, "POST", "/api/v1/agents/gpu-01/heartbeat", { json: {}, token: "tok-1" })).status).toBe(503);
    const ok = await call(server, "POST", "/api/v1/agents/gpu-01/heartbeat", { json: {}, token: "tok-1" });
    expect((ok.json as { commands: unknown[] }).commands).toHaveLength(1);
  });

  it("adds response headers such as Retry-After", async () => {
    server.failNext(1, 429, { error: "Too many requests" }, { path: "/api/v1/health", headers: { "Retry-After": "7" } });
    const res = await health();
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("7");
    expect((await health()).headers.get("retry-after")).toBeNull();
  });

  it("validates its arguments", () => {
    expect(() => server.failNext(-1, 500)).toThrow(RangeError);
    expect(() => server.failNext(1, 99)).toThrow(RangeError);
    expect(() => server.delayNext(1, -5)).toThrow(RangeError);
  });
});

describe("dropNext", () => {
  it("destroys the connection without an answer, then serves normally", async () => {
    server.dropNext(1);
    const code = await fetchFailure(health());
    expect(code).toMatch(/UND_ERR_SOCKET|ECONNRESET/);
    expect(server.requests.at(-1)?.fault).toBe("drop");
    expect((await health()).status).toBe(200);
  });
});

describe("delays", () => {
  it("delays the next request by at least the given time", async () => {
    server.delayNext(1, 100);
    const started = Date.now();
    expect((await health()).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(95);
  });

  it("holds a request until the client gives up, while the next one is answered", async () => {
    server.delayNext(1, 60_000);
    const abort = new AbortController();
    let settled = false;
    const failed = fetchFailure(call(server, "GET", "/api/v1/health", { signal: abort.signal })).finally(() => (settled = true));
    // Wait until the server holds it, so the delay is consumed by this request whatever the load.
    await server.waitFor(() => server.requests.length === 1);
    expect((await health()).status).toBe(200);
    expect(settled).toBe(false);
    abort.abort();
    expect(await failed).toMatch(/abort/i);
  });

  it("delayAll applies to every request until clearFaults", async () => {
    server.delayAll(60_000);
    const aborts = [new AbortController(), new AbortController()];
    const failed = aborts.map((abort) => fetchFailure(call(server, "GET", "/api/v1/health", { signal: abort.signal })));
    await server.waitFor(() => server.requests.length === 2);
    for (const abort of aborts) abort.abort();
    for (const failure of failed) expect(await failure).toMatch(/abort/i);
    server.clearFaults();
    expect((await health()).status).toBe(200);
  });

  it("combines a delay with a failure", async () => {
    server.delayNext(1, 20);
    server.failNext(1, 503);
    expect((await health()).status).toBe(503);
  });
});

describe("down and up", () => {
  it("refuses connections while down and comes back on the same port with its state", async () => {
    const port = server.port;
    const row = server.queueTest({ agent_name: "gpu-01", model_path: "/m", engine_name: "vllm", suite_name: "quick" });
    await server.down();
    expect(server.isUp).toBe(false);
    expect(await fetchFailure(health())).toBe("ECONNREFUSED");
    await server.up();
    expect(server.port).toBe(port);
    expect((await health()).status).toBe(200);
    expect(server.getTest(row.id)?.status).toBe("queued");
  });

  it("cuts requests in flight and keep-alive connections, and cancels delayed handling", async () => {
    server.queueTest({ agent_name: "gpu-01", model_path: "/m", engine_name: "vllm", suite_name: "quick" });
    const agent = new http.Agent({ keepAlive: true });
    try {
      // An idle keep-alive socket must not keep down() waiting.
      await new Promise<void>((resolve, reject) => {
        http.get(`${server.url}/api/v1/health`, { agent }, (res) => res.resume().on("end", resolve)).on("error", reject);
      });
      server.delayNext(1, 60_000);
      const inFlight = fetchFailure(call(server, "POST", "/api/v1/agents/gpu-01/heartbeat", { json: {}, token: "tok-1" }));
      await server.waitFor(() => server.requests.length === 2);
      await server.down();
      expect(await inFlight).toMatch(/UND_ERR_SOCKET|ECONNRESET/);
      await server.up();
      // The delayed heartbeat was never handled, so the command is still queued for the next one.
      const ok = await call(server, "POST", "/api/v1/agents/gpu-01/heartbeat", { json: {}, token: "tok-1" });
      expect((ok.json as { commands: unknown[] }).commands).toHaveLength(1);
    } finally {
      agent.destroy();
    }
  });

  it("down and up are idempotent; up after close is an error", async () => {
    await server.up();
    await server.down();
    await server.down();
    await server.up();
    await server.close();
    await expect(server.up()).rejects.toThrow("closed");
  });
});

describe("onRequest", () => {
  it("reports each finished or dropped request", async () => {
    const seen: Array<{ url: string; status: number | null; fault: string | null }> = [];
    const logged = await startFakeKittServer({ onRequest: (e) => seen.push({ url: e.url, status: e.status, fault: e.fault }) });
    try {
      await call(logged, "GET", "/api/v1/health?x=1");
      logged.dropNext(1);
      await fetchFailure(call(logged, "GET", "/api/v1/version"));
      await waitFor(() => seen.length === 2);
      expect(seen).toEqual([
        { url: "/api/v1/health?x=1", status: 200, fault: null },
        { url: "/api/v1/version", status: null, fault: "drop" },
      ]);
    } finally {
      await logged.close();
    }
  });
});

describe("waitFor", () => {
  it("resolves when a request makes the condition true, without polling", async () => {
    const waiting = server.waitFor(() => server.heartbeats.length === 1);
    await call(server, "POST", "/api/v1/agents/gpu-01/heartbeat", { json: {}, token: "tok-1" });
    await waiting;
    expect(server.heartbeats).toHaveLength(1);
  });

  it("rejects after its timeout and when the condition throws", async () => {
    await expect(server.waitFor(() => false, 20)).rejects.toThrow("condition not met within 20 ms");
    const throwing = server.waitFor(() => {
      if (server.requests.length > 0) throw new Error("boom");
      return false;
    });
    const rejected = expect(throwing).rejects.toThrow("boom");
    await health();
    await rejected;
  });
});
