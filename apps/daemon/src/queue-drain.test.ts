import { sleep } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { AGENT, MODEL, closeWorld, makeWorld, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
});

describe("draining the server's queue (one command per heartbeat)", () => {
  it("ten queued 1-second tests, 30 s interval: all complete within 30 s of the first dispatch; no heartbeat while a job runs", async () => {
    // Real waits (the other tests shorten them): the cadence itself is under test.
    const w = await makeWorld(await tempDir(), { sleepSeconds: 1, lines: 2 }, { heartbeat_interval_s: 30 });
    worlds.push(w);
    w.server.setSettings(AGENT, { heartbeat_interval_s: "30" });
    const rows = Array.from({ length: 10 }, () => w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" }));
    await w.start({ heartbeat: { sleep } });

    const done = () => rows.every((r) => w.server.statuses(r.id).some((s) => s === "completed" || s === "failed"));
    await w.server.waitFor(done, 40_000);
    const finishedAt = Date.now();
    for (const r of rows) expect(w.server.statuses(r.id)).toEqual(["running", "completed"]);

    const beats = w.server.heartbeats;
    const dispatching = beats.filter((b) => b.commands.length > 0);
    expect(dispatching).toHaveLength(10);
    const first = dispatching[0]!.at;
    expect(finishedAt - first).toBeLessThan(30_000);
    // Each command was asked for once the agent was idle again: every heartbeat says idle,
    // so none went out while a job ran (the 60 s floor there still holds).
    expect(beats.map((b) => b.body.status)).toEqual(beats.map(() => "idle"));
    // One heartbeat per command, plus at most the one that found the queue empty.
    expect(beats.length).toBeLessThanOrEqual(11);
  }, 60_000);
});
