/**
 * A command the server dispatched to an agent that died before recording it
 * would stay `dispatched` forever: the next start finds such rows through
 * the server's test list and reports each failed, once; rows the agent
 * knows are left to their own jobs.
 */
import { useTempDir } from "@kitt/testkit";
import { afterEach, expect, it } from "vitest";

import { LOST_DISPATCH_REASON } from "./lost-dispatches.js";
import { AGENT, MODEL, closeWorld, makeWorld, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
});

it("rows dispatched to a dead run and never recorded are reported failed at the next start, once", async () => {
  const w = await makeWorld(await tempDir(), { lines: 2 });
  worlds.push(w);
  // A job the previous run took and finished: known to the journal, not touched.
  const first = await w.start();
  const done = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
  await w.server.waitFor(() => w.server.statuses(done.id).includes("completed"), 15_000);
  await first.stop();
  // Two rows the server marked dispatched while the agent was going down: it never recorded them.
  const lost = [1, 2].map(() => w.server.createTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" }));
  // Another agent's row is not ours.
  w.server.provisionAgent("other-agent", "other-token-0123456789");
  const theirs = w.server.createTest({ agent_name: "other-agent", model_path: MODEL, engine_name: "vllm", suite_name: "quick" });

  const second = await w.start();
  await w.server.waitFor(() => lost.every((r) => w.server.statuses(r.id).length === 1), 15_000);
  for (const row of lost) {
    expect(w.server.statuses(row.id)).toEqual(["failed"]);
    expect(w.server.getTest(row.id)?.error).toBe(LOST_DISPATCH_REASON);
    expect(w.server.results.filter((r) => r.body.command_id === row.command_id)).toHaveLength(1);
  }
  expect(w.server.statuses(done.id)).toEqual(["running", "completed"]);
  expect(w.server.statuses(theirs.id)).toEqual([]);
  await second.stop();

  // A third start finds nothing more to report.
  await w.start();
  await new Promise((r) => setTimeout(r, 500));
  for (const row of lost) expect(w.server.statuses(row.id)).toEqual(["failed"]);
});
