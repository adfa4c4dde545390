import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

import { KittServerClient } from "@kitt/protocol";
import { afterEach, describe, expect, it } from "vitest";

import { NAME, T0, TOKEN, useHarness } from "./test-harness.js";

const h = useHarness(afterEach);
const HEARTBEAT = /\/heartbeat$/;
const backoff = { baseMs: 1_000, maxMs: 8_000 };

describe("HeartbeatLoop: server down or failing", () => {
  it("backs off exponentially while down, with one 'failing' and one 'recovered' line", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { backoff, random: () => 0.5 });
    await t.loop.start();
    await t.sleeper.next();
    await srv.down();

    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      t.clock.t += 1_000;
      const wait = await t.sleeper.next();
      waits.push(wait.ms);
      wait.fire();
      await t.sleeper.next(); // the attempt is over once the loop waits again
    }
    // waits[0] is the regular interval; then equal-jitter backoff 1 s, 2 s, 4 s, 8 s (capped) at random 0.5.
    expect(waits).toEqual([31_500, 750, 1_500, 3_000, 6_000, 6_000]);
    await t.sleeper.next();
    expect(t.sleeper.requested.at(-1)).toBe(6_000);
    expect(t.loop.state).toMatchObject({ health: "failing", consecutiveFailures: 6, failures: 6, successes: 1, lastSuccessAt: T0 });
    expect(t.loop.state.lastError).toMatch(/connection refused \(ECONNREFUSED\)/);

    await srv.up();
    t.clock.t += 1_000;
    await t.sleeper.fireNext();
    expect((await t.sleeper.next()).ms).toBe(31_500);
    expect(t.loop.state).toMatchObject({ health: "ok", consecutiveFailures: 0, failures: 6, successes: 2, lastSuccessAt: T0 + 7_000 });
    expect(t.loop.state.lastError).toBeNull();

    expect(t.lines("warn", /heartbeat failing/)).toHaveLength(1);
    // The first attempt meets the kept-alive socket the server destroyed, later ones a closed port.
    expect(t.lines("warn", /heartbeat failing/)[0]?.message).toMatch(/\((ECONNRESET|ECONNREFUSED)\) talking to http/);
    expect(t.lines("info", /recovered/)).toHaveLength(1);
    expect(t.lines("info", /recovered/)[0]?.message).toMatch(/after 6 failed attempt\(s\) over 6 s/);
    expect(t.logger.records.filter((r) => r.level === "warn" || r.level === "error")).toHaveLength(1);
    expect(t.health).toEqual(["ok", "failing", "ok"]);
    // One request per attempt: the client's own retries are off, the loop does the backing off.
    expect(srv.heartbeats).toHaveLength(2);
  });

  it("treats 5xx and dropped connections alike: backoff, one line each way", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { backoff, random: () => 1 });
    srv.failNext(2, 503, { error: "maintenance" }, { path: HEARTBEAT });
    srv.dropNext(1, { path: HEARTBEAT });
    srv.failNext(1, 500, "<html>oops</html>", { path: HEARTBEAT });
    await t.loop.start();
    const waits = [await t.sleeper.fireNext(), await t.sleeper.fireNext(), await t.sleeper.fireNext(), await t.sleeper.fireNext()];
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000]);
    await t.sleeper.next();
    expect(t.loop.state).toMatchObject({ health: "ok", failures: 4, successes: 1 });
    expect(t.lines("warn", /heartbeat failing: .*HTTP 503: maintenance/)).toHaveLength(1);
    expect(t.lines("info", /recovered after 4 failed/)).toHaveLength(1);
    expect(t.logger.records.filter((r) => r.level === "warn")).toHaveLength(1);
  });

  it("a response body over the client's cap is a failed heartbeat like any other, then the loop recovers", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { backoff, random: () => 1 });
    const flood = srv.floodNext(1, 200 * 1024 * 1024, { path: HEARTBEAT });
    await t.loop.start();
    expect(await t.sleeper.fireNext()).toBe(1_000);
    await flood.closed;
    expect(flood.sent).toBeLessThan(64 * 1024 * 1024);
    expect(t.lines("warn", /heartbeat failing: .*\/heartbeat: response body larger than 16 MiB \(16777216 bytes\); abandoned/)).toHaveLength(1);
    await t.sleeper.next();
    expect(t.loop.state).toMatchObject({ health: "ok", failures: 1, successes: 1 });
  }, 20_000);

  it("believes a Retry-After header, within the cap", async () => {
    // The fake server cannot send headers on injected faults: a bare HTTP server answers instead.
    const answers = ["7", "120"];
    const bare = createServer((req, res) => {
      req.resume();
      res.writeHead(503, { "content-type": "application/json", "retry-after": answers.shift() ?? "1" });
      res.end(JSON.stringify({ error: "maintenance" }));
    });
    await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(bare.address() as AddressInfo).port}`;
    const client = new KittServerClient({ serverUrl: url, token: TOKEN });
    try {
      const srv = await h.server();
      const t = h.loop(srv, { backoff, random: () => 0, client, agentId: "0123456789abcdef" });
      await t.loop.start();
      expect((await t.sleeper.next()).ms).toBe(7_000);
      await t.sleeper.fireNext();
      expect((await t.sleeper.next()).ms).toBe(8_000);
      await t.loop.stop();
    } finally {
      client.close();
      await new Promise((resolve) => bare.close(resolve));
    }
  });

  it("counts an invalid response as a failure and says what was wrong", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { backoff, random: () => 1 });
    srv.failNext(1, 200, ["not", "a", "response"], { path: HEARTBEAT });
    await t.loop.start();
    expect((await t.sleeper.next()).ms).toBe(1_000);
    expect(t.loop.state.health).toBe("failing");
    expect(t.lines("warn", /heartbeat failing: invalid heartbeat response: \(root\) must be an object, got an array/)).toHaveLength(1);
    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(t.loop.state.health).toBe("ok");
  });
});

describe("HeartbeatLoop: token refused", () => {
  it("403: status error, one clear line, polls at the cap, recovers when the token is fixed", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { backoff, random: () => 0 });
    await t.loop.start();
    await t.sleeper.next();

    // The operator re-provisions the agent with another token: ours is now refused.
    srv.provisionAgent(NAME, "someone-elses-token");
    await t.sleeper.fireNext();
    expect((await t.sleeper.next()).ms).toBe(8_000);
    expect(t.loop.state).toMatchObject({ health: "unauthorized", statusOverride: "error", consecutiveFailures: 1 });
    await t.sleeper.fireNext();
    expect((await t.sleeper.next()).ms).toBe(8_000);
    expect(t.loop.state.consecutiveFailures).toBe(2);

    const errors = t.lines("error", /heartbeat rejected/);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toMatch(/HTTP 403: Invalid token for this agent/);
    expect(errors[0]?.message).toMatch(/fix "token" in agent\.yaml/);
    expect(t.logger.text()).not.toContain(TOKEN);

    srv.provisionAgent(NAME, TOKEN);
    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(t.loop.state).toMatchObject({ health: "ok", statusOverride: null, consecutiveFailures: 0 });
    expect(t.lines("info", /recovered after 2 failed/)).toHaveLength(1);
    expect(t.health).toEqual(["ok", "unauthorized", "ok"]);
  });

  it("401 at registration: no token sent for a provisioned name", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { backoff, random: () => 0, client: h.client(srv, "") });
    await t.loop.start();
    expect((await t.sleeper.next()).ms).toBe(8_000);
    expect(t.loop.state).toMatchObject({ health: "unauthorized", statusOverride: "error", agentId: null });
    expect(t.lines("error", /HTTP 401: Missing authorization/)).toHaveLength(1);
    // Registration was refused, so nothing was tried by name.
    expect(srv.heartbeats).toHaveLength(0);
  });

  it("going from refused to unreachable logs the new trouble once", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { backoff, random: () => 0 });
    srv.failNext(1, 403, { error: "Invalid token for this agent" }, { path: HEARTBEAT });
    await t.loop.start();
    await t.sleeper.next();
    await srv.down();
    await t.sleeper.fireNext();
    await t.sleeper.fireNext();
    // Third consecutive failure on the backoff ladder (random 0): 4 s halved.
    expect((await t.sleeper.next()).ms).toBe(2_000);
    expect(t.lines("error", /rejected/)).toHaveLength(1);
    expect(t.lines("warn", /failing/)).toHaveLength(1);
  });
});

describe("HeartbeatLoop: status provider", () => {
  it("a throwing provider still lets the heartbeat out, with the last known status, logged once", async () => {
    const srv = await h.server();
    let broken = false;
    const t = h.loop(srv, {
      status: () => {
        if (broken) throw new Error("NVML: GPU is lost");
        return { status: "running", current_task: "t-9", gpu_utilization_pct: 80 };
      },
    });
    await t.loop.start();
    await t.sleeper.next();
    broken = true;
    await t.sleeper.fireNext();
    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(srv.heartbeats.map((b) => b.body.status)).toEqual(["running", "running", "running"]);
    expect(srv.heartbeats[2]?.body).not.toHaveProperty("gpu_utilization_pct");
    expect(t.lines("warn", /status provider failed \(NVML: GPU is lost\)/)).toHaveLength(1);
    broken = false;
    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(srv.heartbeats[3]?.body).toMatchObject({ gpu_utilization_pct: 80 });
    expect(t.lines("info", /status figures are available again/)).toHaveLength(1);
    expect(t.loop.state.failures).toBe(0);
  });

  it("a hanging provider is cut off after statusTimeoutMs", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { status: () => new Promise(() => {}), statusTimeoutMs: 20 });
    await t.loop.start();
    await t.sleeper.next();
    expect(srv.heartbeats[0]?.body).toMatchObject({ status: "idle" });
    expect(t.lines("warn", /status provider failed \(no answer within 20 ms\)/)).toHaveLength(1);
  });
});
