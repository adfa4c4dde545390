import { afterEach, describe, expect, it } from "vitest";

import { NAME, useHarness } from "./test-harness.js";

const h = useHarness(afterEach);
const HEARTBEAT = /\/heartbeat$/;

describe("HeartbeatLoop: agent id", () => {
  it("404: registers again, adopts the new id and retries in the same attempt", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { agentId: "feedfacefeedface" });
    await t.loop.start();
    await t.sleeper.next();
    const agentId = srv.agent(NAME)?.id as string;
    const paths = srv.requests.map((r) => `${r.method} ${r.path}`);
    expect(paths).toEqual([
      "POST /api/v1/agents/feedfacefeedface/heartbeat",
      "POST /api/v1/agents/register",
      `POST /api/v1/agents/${agentId}/heartbeat`,
    ]);
    expect(t.loop.state).toMatchObject({ agentId, health: "ok", failures: 0, successes: 1 });
    expect(t.ids).toEqual([agentId]);
    expect(t.lines("warn", /does not know agent feedfacefeedface; registering again/)).toHaveLength(1);
  });

  it("404 twice in a row counts as one failed attempt, not a loop", async () => {
    const srv = await h.server();
    srv.failNext(2, 404, { error: "Agent not found" }, { path: HEARTBEAT });
    const t = h.loop(srv, { agentId: "feedfacefeedface" });
    await t.loop.start();
    await t.sleeper.next();
    expect(srv.registrations).toHaveLength(1);
    expect(t.loop.state).toMatchObject({ health: "failing", failures: 1 });
    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(t.loop.state).toMatchObject({ health: "ok", successes: 1 });
  });

  it("adopts the canonical agent_id from a response (heartbeating by name)", async () => {
    const srv = await h.server();
    const t = h.loop(srv, { agentId: NAME });
    await t.loop.start();
    await t.sleeper.fireNext();
    await t.sleeper.next();
    const agentId = srv.agent(NAME)?.id as string;
    expect(srv.registrations).toHaveLength(0);
    expect(srv.heartbeats.map((b) => b.idInPath)).toEqual([NAME, agentId]);
    expect(t.loop.state.agentId).toBe(agentId);
    expect(t.ids).toEqual([agentId]);
  });

  it("adopts an agent_id the server hands out in a heartbeat response", async () => {
    const srv = await h.server();
    const t = h.loop(srv);
    await t.loop.start();
    await t.sleeper.next();
    srv.failNext(1, 200, { ack: true, agent_id: "0123456789abcdef", commands: [], settings: {} }, { path: HEARTBEAT });
    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(t.loop.state.agentId).toBe("0123456789abcdef");
    expect(t.lines("info", /calls this agent 0123456789abcdef/)).toHaveLength(1);
  });

  it("when registration fails with a server error, heartbeats with its name and adopts the id", async () => {
    const srv = await h.server();
    srv.failNext(1, 500, { error: "boom" }, { path: "/api/v1/agents/register" });
    const t = h.loop(srv);
    await t.loop.start();
    await t.sleeper.next();
    expect(srv.heartbeats[0]?.idInPath).toBe(NAME);
    expect(t.loop.state).toMatchObject({ agentId: srv.agent(NAME)?.id, health: "ok" });
  });

  it("when the server is down at start, registers on the first attempt that reaches it", async () => {
    const srv = await h.server();
    await srv.down();
    const t = h.loop(srv);
    await t.loop.start();
    await t.sleeper.next();
    expect(t.loop.state).toMatchObject({ agentId: null, health: "failing" });
    await srv.up();
    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(srv.registrations).toHaveLength(1);
    expect(srv.heartbeats[0]?.idInPath).toBe(srv.agent(NAME)?.id);
  });
});
