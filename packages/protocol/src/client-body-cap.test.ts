import { type FakeKittServer, startFakeKittServer } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { KittServerClient } from "./client.js";
import { KittError } from "./errors.js";
import type { HeartbeatRequest } from "./messages.js";
import { caught } from "./test-fixtures.js";

const TOKEN = "cap-test-token-0123";
const MiB = 1024 * 1024;
const HEARTBEAT = /\/heartbeat$/;
const beat: HeartbeatRequest = { status: "idle", current_task: "", uptime_s: 1 };

const servers: FakeKittServer[] = [];
const clients: KittServerClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function world(maxResponseBytes?: number) {
  const srv = await startFakeKittServer({ agents: [{ name: "gpu-node-01", token: TOKEN }] });
  servers.push(srv);
  const c = new KittServerClient({ serverUrl: srv.url, token: TOKEN, retries: 0, ...(maxResponseBytes !== undefined ? { maxResponseBytes } : {}) });
  clients.push(c);
  const agentId = (await c.register({ name: "gpu-node-01", hostname: "h", port: 8090 })).agent_id;
  return { srv, c, agentId };
}

describe("response body cap", () => {
  it("abandons a 400 MB heartbeat body early: one-line error naming route and cap, RSS bounded, not retried", async () => {
    const { srv, c, agentId } = await world();
    const flood = srv.floodNext(1, 400 * 1000 * 1000, { path: HEARTBEAT });
    const rssBefore = process.memoryUsage().rss;
    const err = await caught(c.heartbeat(agentId, beat, { retries: 2 }));
    const rssAfter = process.memoryUsage().rss;
    expect(err).toBeInstanceOf(KittError);
    expect(err).toMatchObject({ code: "TOO_LARGE" });
    expect(err.message).toBe(`POST /api/v1/agents/${agentId}/heartbeat: response body larger than 16 MiB (16777216 bytes); abandoned`);
    expect(err.message).not.toContain("\n");
    await flood.closed;
    // The server could hand the socket at most the cap plus what the kernel and the stream buffers hold.
    expect(flood.sent).toBeLessThan(64 * MiB);
    expect(rssAfter - rssBefore).toBeLessThan(200 * MiB);
    expect(srv.requests.filter((r) => HEARTBEAT.test(r.path))).toHaveLength(1);
    // The client keeps working: the next heartbeat is answered normally.
    expect((await c.heartbeat(agentId, beat)).ack).toBe(true);
  }, 30_000);

  it("refuses an announced Content-Length over the cap before reading the body", async () => {
    const { srv, c, agentId } = await world(1 * MiB);
    const flood = srv.floodNext(1, 50 * MiB, { path: HEARTBEAT, contentLength: true });
    const err = await caught(c.heartbeat(agentId, beat));
    expect(err.message).toMatch(/: response body larger than 1 MiB \(1048576 bytes\); abandoned$/);
    await flood.closed;
    expect(flood.sent).toBeLessThan(16 * MiB);
  });

  it("applies to every JSON call, per call too, and lets a body at the cap through", async () => {
    const { srv, c } = await world();
    srv.floodNext(1, 2 * MiB, { path: "/api/v1/health" });
    const err = await caught(c.health({ maxResponseBytes: 1 * MiB }));
    expect(err.message).toBe("GET /api/v1/health: response body larger than 1 MiB (1048576 bytes); abandoned");
    const exact = Buffer.byteLength(await (await fetch(`${srv.url}/api/v1/health`)).text());
    expect(await c.health({ maxResponseBytes: exact })).toMatchObject({ status: "ok" });
    expect((await caught(c.health({ maxResponseBytes: exact - 1 }))).message).toMatch(/larger than \d+ bytes; abandoned$/);
  });

  it("rejects a nonsense cap with a clear error", () => {
    expect(() => new KittServerClient({ serverUrl: "http://127.0.0.1:1", maxResponseBytes: 0 })).toThrow(
      "maxResponseBytes must be a positive integer, got 0",
    );
  });
});
