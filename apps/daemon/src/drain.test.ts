import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { AGENT, MODEL, TOKEN, closeWorld, makeWorld, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
});

const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

describe("draining (kitt-agent stop --drain)", () => {
  it("finishes the running job and the one queued behind it, refuses new ones, sends no heartbeat, then stops", async () => {
    const w = await makeWorld(await tempDir(), { sleepSeconds: 2, lines: 2 });
    worlds.push(w);
    const agent = await w.start();
    const first = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
    await w.server.waitFor(() => w.server.statuses(first.id).includes("running"), 15_000);
    const post = (commandId: string) =>
      fetch(`${agent.url}/api/commands`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ command_id: commandId, test_id: `t-${commandId}`, type: "run_test", payload: { model_path: MODEL, engine_name: "vllm", suite_name: "quick" } }),
      });
    expect((await post("local-1")).status).toBe(202);

    const drain = await fetch(`${agent.url}/api/drain`, { method: "POST", headers: auth });
    expect(drain.status).toBe(202);
    expect(await drain.json()).toEqual({ draining: true, running: 1, queued: 1 });
    const refused = await post("local-2");
    expect(refused.status).toBe(503);
    const beatsWhenDraining = w.server.heartbeats.length;
    // A second request changes nothing.
    expect((await fetch(`${agent.url}/api/drain`, { method: "POST", headers: auth })).status).toBe(202);
    const later = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });

    await agent.done;
    expect(w.server.statuses(first.id)).toEqual(["running", "completed"]);
    expect(w.logText()).toMatch(/local-1.*finished|finished.*local-1/);
    expect(w.logText()).not.toMatch(/local-2.*received|received.*local-2/);
    expect(w.server.getTest(later.id)?.status).toBe("queued");
    // At most the heartbeat in flight when the drain began.
    expect(w.server.heartbeats.length).toBeLessThanOrEqual(beatsWhenDraining + 1);
    expect(w.logText()).toMatch(/drained: every accepted job has finished/);
  }, 60_000);

  it("without auth the drain route is refused and nothing changes", async () => {
    const w = await makeWorld(await tempDir());
    worlds.push(w);
    const agent = await w.start();
    expect((await fetch(`${agent.url}/api/drain`, { method: "POST" })).status).toBe(401);
    expect((await fetch(`${agent.url}/api/health`)).status).toBe(200);
    expect((await (await fetch(`${agent.url}/api/status`, { headers: auth })).json()) as { status: string }).toMatchObject({ status: "idle" });
  });
});
