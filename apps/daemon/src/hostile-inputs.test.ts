import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { AGENT, MODEL, closeWorld, makeWorld, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
});

const DEPTH = 300_000;

async function terminal(w: World, testId: string): Promise<string[]> {
  await w.server.waitFor(() => w.server.statuses(testId).some((s) => s === "completed" || s === "failed"), 20_000);
  return w.server.statuses(testId);
}

describe("the agent and hostile inputs", () => {
  it("a FIFO named metrics.json: the job completes without result_data, one line says why, and the agent stops promptly", async () => {
    const w = await makeWorld(await tempDir(), { metricsFile: { fifo: true } });
    worlds.push(w);
    const agent = await w.start();
    const row = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
    expect(await terminal(w, row.id)).toEqual(["running", "completed"]);
    await w.server.waitFor(() => w.server.results.length === 1, 5_000);
    expect(w.server.results[0]?.body).toEqual({ command_id: row.command_id, status: "completed", container_id: "", error: "" });
    expect(w.server.logLines(row.id).flatMap((l) => l.split("\n"))).toContain("metrics.json is a FIFO, not a regular file: not read: result sent without result_data");
    await agent.stop();
  }, 60_000);


  it("valid, 300,000-level payload, valid (with ack \"yes\" and an unreadable setting): both good jobs run, the bad one is reported failed", async () => {
    const w = await makeWorld(await tempDir());
    worlds.push(w);
    // Queued rows: the crafted first response carries them (later heartbeats hand them out again, and
    // the agent ignores them as already dispatched).
    const rows = [0, 1, 2].map(() => w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" }));
    const [a, b, c] = rows as [(typeof rows)[0], (typeof rows)[0], (typeof rows)[0]];
    const cmd = (row: typeof a, payload: string) =>
      `{"command_id":"${row.command_id}","test_id":"${row.id}","type":"run_test","payload":${payload}}`;
    const payload = JSON.stringify({ model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
    const deep = payload.replace(/}$/, `,"runtime_config":{"x":${"[".repeat(DEPTH)}${"]".repeat(DEPTH)}}}`);
    const body = `{"ack":"yes","commands":[${cmd(a, payload)},${cmd(b, deep)},${cmd(c, payload)}],"settings":{"auto_cleanup":{"x":[1]}}}`;
    // The first heartbeat gets this body (raw text: the fake server's own JSON.stringify could not write it).
    w.server.failNext(1, 200, body, { path: /\/heartbeat$/, headers: { "content-type": "application/json" } });
    await w.start();
    expect(await terminal(w, a.id)).toEqual(["running", "completed"]);
    expect(await terminal(w, c.id)).toEqual(["running", "completed"]);
    expect(await terminal(w, b.id)).toEqual(["failed"]);
    expect(w.server.getTest(b.id)?.error).toBe("invalid command: nests deeper than 32 levels");
    await w.server.waitFor(() => w.server.results.length === 3, 5_000);
    expect(w.server.results.map((r) => [r.body.command_id, r.body.status])).toEqual(
      expect.arrayContaining([
        [a.command_id, "completed"],
        [b.command_id, "failed"],
        [c.command_id, "completed"],
      ]),
    );
    const log = w.logText();
    expect(log).toContain('heartbeat response: ack: expected a boolean, got \\"yes\\"; taken as true');
    expect(log).toContain("server settings partly ignored: auto_cleanup: expected a string, got an object");
    expect(log).not.toContain("Maximum call stack");
  }, 60_000);
});
