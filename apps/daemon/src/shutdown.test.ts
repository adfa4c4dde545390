/**
 * Shutdown is bounded by its flush timeout, whatever the server does: with
 * every log post refused, a finished job's result and final status wait for
 * lines that cannot go, and stop() must still return at once after the
 * flush; what is undelivered stays on disk and goes at the next start.
 */
import { useTempDir } from "@kitt/testkit";
import { afterEach, expect, it } from "vitest";

import { AGENT, MODEL, closeWorld, makeWorld, openJournalJobs, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
});

it("a server that refuses every log post cannot hold shutdown past the flush timeout; the outcome is delivered at the next start", async () => {
  const w = await makeWorld(await tempDir(), { lines: 5 });
  worlds.push(w);
  w.server.failNext(1_000_000, 503, { error: "logs down" }, { path: /\/logs$/ });
  const agent = await w.start({ flushTimeoutMs: 1_000 });
  const row = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
  await w.server.waitFor(() => w.server.statuses(row.id).includes("running"), 15_000);
  // The job ends on the agent; its outcome waits behind its undeliverable lines.
  const ended = async () => {
    const res = await fetch(`${agent.url}/api/commands`, {
      method: "POST",
      headers: { authorization: "Bearer e2e-token-0123456789", "content-type": "application/json" },
      body: JSON.stringify({ command_id: "q", type: "status", payload: { command_id: row.command_id } }),
    });
    return ((await res.json()) as { state?: string }).state === "completed";
  };
  for (let i = 0; i < 300 && !(await ended()); i++) await new Promise((r) => setTimeout(r, 50));
  expect(await ended()).toBe(true);
  expect(w.server.statuses(row.id)).toEqual(["running"]);

  const t0 = Date.now();
  await agent.stop();
  expect(Date.now() - t0).toBeLessThan(4_000);
  expect(await openJournalJobs(w.config.state_dir)).toEqual([]);

  // The server takes logs again: the next start delivers the lines, then the result and the final status.
  w.server.clearFaults();
  await w.start();
  await w.server.waitFor(() => w.server.statuses(row.id).length === 2 && w.server.results.length === 1, 15_000);
  expect(w.server.statuses(row.id)).toEqual(["running", "completed"]);
  expect(w.server.logLines(row.id).join("\n")).toContain("[5/5]");
});
