import { useTempDir } from "@kitt/testkit";
import { afterEach, expect, it } from "vitest";

import { AGENT, MODEL, TOKEN, closeWorld, makeWorld, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
});

const auth = { authorization: `Bearer ${TOKEN}` };

it("/api/status and /metrics show the outbox: reports waiting for the server, those only in memory, the disk's error", async () => {
  const w = await makeWorld(await tempDir(), { lines: 3 });
  worlds.push(w);
  const agent = await w.start();
  const status = async () => ((await (await fetch(`${agent.url}/api/status`, { headers: auth })).json()) as { outbox: unknown }).outbox;
  const metrics = async () => (await fetch(`${agent.url}/metrics`, { headers: auth })).text();
  expect(await status()).toEqual({ pending: 0, in_memory: 0, disk_error: null });
  const idle = await metrics();
  expect(idle).toContain("# TYPE kitt_agent_outbox_pending gauge\nkitt_agent_outbox_pending 0\n");
  expect(idle).toContain("\nkitt_agent_outbox_in_memory 0\n");
  expect(idle).toContain("\nkitt_agent_state_disk_error 0\n");

  // The server takes the job and its lines but answers 503 to every status post: the job's reports wait, in order.
  w.server.failNext(Infinity, 503, { error: "busy" }, { method: "POST", path: /\/status$/ });
  const row = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
  const deadline = Date.now() + 20_000;
  let outbox: unknown;
  do {
    await new Promise((r) => setTimeout(r, 50));
    outbox = await status();
  } while ((outbox as { pending: number }).pending < 3 && Date.now() < deadline);
  expect(outbox).toEqual({ pending: 3, in_memory: 0, disk_error: null });
  expect(await metrics()).toContain("\nkitt_agent_outbox_pending 3\n");
  expect(w.server.statuses(row.id)).toEqual([]);
});
