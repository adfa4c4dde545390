import { COMMAND_LIMITS } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { closeWorld, makeWorld, TOKEN, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
});

const DEPTH = 100_000;
const deepObject = (depth: number) => `${'{"a":'.repeat(depth - 1)}{}${"}".repeat(depth - 1)}`;
const deepArray = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
const RUN = '"type":"run_test","payload":{"model_path":"/data/models/m","engine_name":"vllm","suite_name":"quick"';

async function post(url: string, body: string, contentType = "application/json") {
  const res = await fetch(`${url}/api/commands`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": contentType },
    body,
  });
  return { status: res.status, text: await res.text() };
}

describe("a deeply nested JSON body to the real daemon's local API", () => {
  it("answers 400 with one line wherever the nesting is, before any route sees it, and keeps serving", async () => {
    const w = await makeWorld(await tempDir());
    worlds.push(w);
    const agent = await w.start();
    const bodies: [string, string][] = [
      // 400,000 levels of arrays in runtime_config overflowed the journal's walk: a 500 before.
      ["runtime_config", `{"command_id":"d1","test_id":"t1",${RUN},"runtime_config":{"x":${deepArray(4 * DEPTH)}}}}`],
      ["an extra payload field", `{"command_id":"d2","test_id":"t2",${RUN},"extra":${deepObject(DEPTH)}}}`],
      ["a whole payload", `{"command_id":"d3","test_id":"t3","type":"run_test","payload":${deepObject(DEPTH)}}`],
      ["a cancel", `{"command_id":"d4","type":"cancel","payload":{"command_id":"d1","x":${deepObject(DEPTH)}}}`],
      ["a status", `{"command_id":"d5","type":"status","payload":{"command_id":"d1","x":${deepArray(DEPTH)}}}`],
      ["a run_container", `{"command_id":"d6","type":"run_container","payload":{"image":"busybox","x":${deepObject(DEPTH)}}}`],
      ["stop_container", `{"command_id":"d7","type":"stop_container","payload":{"command_id":"d6","x":${deepArray(DEPTH)}}}`],
      ["check_docker", `{"command_id":"d8","type":"check_docker","payload":${deepObject(DEPTH)}}`],
      ["a top-level array", deepArray(DEPTH)],
      ["an unknown field", `{"command_id":"d9","x":${deepObject(DEPTH)}}`],
    ];
    for (const [where, body] of bodies) {
      const res = await post(agent.url, body);
      expect({ where, ...res }).toEqual({
        where,
        status: 400,
        text: expect.stringMatching(new RegExp(`^\\{"error":"body nests deeper than ${COMMAND_LIMITS.maxDepth} levels \\(at character \\d+\\)"\\}$`)),
      });
    }
    // Any JSON media type and any route: the check sits in the body parser.
    expect((await post(agent.url, deepArray(DEPTH), "application/merge-patch+json")).status).toBe(400);
    const other = await fetch(`${agent.url}/api/status`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: deepArray(DEPTH),
    });
    expect(other.status).toBe(400);
    // Nothing of it was taken, and none of it reached the log.
    expect(w.server.results).toEqual([]);
    expect(w.logText()).not.toContain("local API error");
    const status = (await (await fetch(`${agent.url}/api/status`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
      jobs: { running: unknown[]; queued: unknown[] };
    };
    expect(status.jobs).toMatchObject({ running: [], queued: [] });

    // At the limit it is an ordinary command; brackets inside strings do not count.
    const inner = COMMAND_LIMITS.maxDepth - 2; // the body and its payload are the first two levels
    const ok = await post(agent.url, `{"command_id":"ok1","test_id":"ok1",${RUN},"runtime_config":{"note":"${"[{".repeat(500)}","a":${deepObject(inner - 1)}}}}`);
    expect(ok).toEqual({ status: 202, text: '{"accepted":true,"command_id":"ok1"}' });
    const over = await post(agent.url, `{"command_id":"ok2","test_id":"ok2",${RUN},"runtime_config":${deepObject(inner + 1)}}}`);
    expect(over.status).toBe(400);
  });
});
