import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it } from "vitest";

import { RESTART_REASON } from "./agent.js";
import { AGENT, MODEL, TOKEN, closeWorld, makeWorld, openJournalJobs, type World } from "./test-agent.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
afterEach(async () => {
  await Promise.all(worlds.splice(0).map(closeWorld));
});

async function world(...args: Parameters<typeof makeWorld> extends [string, ...infer R] ? R : never) {
  const w = await makeWorld(await tempDir(), ...args);
  worlds.push(w);
  return w;
}

const auth = { authorization: `Bearer ${TOKEN}` };

function queue(w: World, model = MODEL) {
  return w.server.queueTest({ agent_name: AGENT, model_path: model, engine_name: "vllm", suite_name: "quick" });
}

async function terminal(w: World, testId: string, timeoutMs = 20_000): Promise<string[]> {
  await w.server.waitFor(() => w.server.statuses(testId).some((s) => s === "completed" || s === "failed"), timeoutMs);
  return w.server.statuses(testId);
}

describe("the agent end to end", () => {
  it("a reader who comes after a 5,000-line job gets its whole log from line 1 (kept on disk), with no lost-lines notice", async () => {
    const w = await world({ lines: 5_000 });
    const agent = await w.start();
    const row = queue(w);
    expect(await terminal(w, row.id, 40_000)).toEqual(["running", "completed"]);
    const sse = await (await fetch(`${agent.url}/api/logs/${row.id}`, { headers: auth })).text();
    expect(sse).not.toContain("event: dropped");
    const steps = [...sse.matchAll(/"line":"\[(\d+)\/5000\] benchmark step \d+"/g)].map((m) => Number(m[1]));
    expect(steps).toEqual(Array.from({ length: 5_000 }, (_, i) => i + 1));
    expect(sse).toMatch(/^retry: \d+\n\nid: 1\nevent: log\n/);
    // Where it is kept: <state_dir>/job-logs/<command id>.log, while the agent remembers the job.
    expect(existsSync(join(w.config.state_dir, "job-logs", `${row.command_id}.log`))).toBe(true);
  }, 60_000);

  it("registers, takes a job from the heartbeat, stages the model, runs, streams logs, reports the result, evicts", async () => {
    const w = await world({ lines: 20, stderrLine: true });
    const agent = await w.start();
    expect(w.server.registrations[0]?.body).toMatchObject({ name: AGENT, hostname: expect.any(String), port: agent.port, kitt_version: "kitt-agent-ts/0.1.0" });
    const row = queue(w);
    expect(await terminal(w, row.id)).toEqual(["running", "completed"]);
    const lines = w.server.logLines(row.id).flatMap((l) => l.split("\n"));
    const steps = lines.filter((l) => /^\[\d+\/20\] benchmark step/.test(l));
    expect(steps).toEqual(Array.from({ length: 20 }, (_, i) => `[${i + 1}/20] benchmark step ${i + 1}`));
    expect(lines.some((l) => l.includes("model=" + join(w.config.model_storage_dir)))).toBe(true);
    expect(lines).toContain("a warning on stderr");
    await w.server.waitFor(() => w.server.results.length === 1, 5000);
    expect(w.server.results[0]?.body).toMatchObject({
      command_id: row.command_id,
      status: "completed",
      result_data: { throughput_tokens_per_s: 1234.5, ttft_ms_p50: 42 },
    });
    // auto_cleanup: the staged copy is gone again, and no staging leftovers remain.
    const left = existsSync(w.config.model_storage_dir) ? await readdir(w.config.model_storage_dir, { recursive: true }) : [];
    expect(left.filter((p) => p.includes("safetensors"))).toEqual([]);
    // The local API tells the same story.
    const status = (await (await fetch(`${agent.url}/api/status`, { headers: auth })).json()) as Record<string, unknown>;
    expect(status).toMatchObject({ name: AGENT, status: "idle", running: false, active_containers: 0, heartbeat: { health: "ok" } });
    const sse = await (await fetch(`${agent.url}/api/logs/${row.command_id}`, { headers: auth })).text();
    expect(sse).toContain("[20/20] benchmark step 20");
    expect(sse).toContain('event: end\ndata: {"command_id":"' + row.command_id + '","status":"completed"');
    // The test id (what the server's pages show) reads the same log.
    expect(await (await fetch(`${agent.url}/api/logs/${row.id}`, { headers: auth })).text()).toBe(sse);
    const metrics = await (await fetch(`${agent.url}/metrics`, { headers: auth })).text();
    expect(metrics).toContain('kitt_agent_jobs_total{outcome="completed"} 1');
    expect(metrics).toMatch(/kitt_agent_staging_bytes_total \d+/);
    expect(w.logText()).not.toContain(TOKEN);
  });

  it("the server's untouched default storage dir does not override agent.yaml", async () => {
    // Only the share is set on the server; model_storage_dir stays the server default "~/.kitt/models".
    const w = await world({}, {}, { serverSettings: false });
    w.server.setSettings(AGENT, { model_share_mount: w.config.model_share_mount, auto_cleanup: "False" });
    await w.start();
    const row = queue(w);
    expect(await terminal(w, row.id)).toEqual(["running", "completed"]);
    const staged = await readdir(w.config.model_storage_dir, { recursive: true });
    expect(staged.some((p) => p.endsWith(".safetensors"))).toBe(true);
  });

  it("a non-empty storage dir the server names but the agent did not create is refused; the job stages into agent.yaml's", async () => {
    const w = await world({}, {}, { serverSettings: false });
    const foreign = join(w.dir, "users-files");
    const userModelDir = join(foreign, "hf", "Qwen", "Qwen2.5-0.5B-Instruct");
    await mkdir(userModelDir, { recursive: true });
    await writeFile(join(userModelDir, "mine.txt"), "the user's");
    w.server.setSettings(AGENT, { model_storage_dir: foreign, model_share_mount: w.config.model_share_mount, auto_cleanup: "False" });
    await w.start();
    await w.server.waitFor(() => w.logText().includes(`not using ${foreign} from the server as model storage`), 5000);
    const row = queue(w);
    expect(await terminal(w, row.id)).toEqual(["running", "completed"]);
    expect((await readdir(w.config.model_storage_dir, { recursive: true })).some((p) => p.endsWith(".safetensors"))).toBe(true);
    expect(await readdir(userModelDir)).toEqual(["mine.txt"]);
  });

  it("a failing benchmark ends failed with its exit code", async () => {
    const w = await world({ exitCode: 3 });
    await w.start();
    const row = queue(w);
    expect(await terminal(w, row.id)).toEqual(["running", "failed"]);
    expect(w.server.getTest(row.id)?.error).toBe("Exit 3");
  });

  it("a missing model fails the job with a clear error", async () => {
    const w = await world();
    await w.start();
    const row = queue(w, "/data/models/nope/Missing-Model");
    expect((await terminal(w, row.id)).at(-1)).toBe("failed");
    expect(w.server.getTest(row.id)?.error).toMatch(/Missing-Model/);
  });

  it("a missing benchmark command fails the job with a clear error", async () => {
    const w = await world({}, { benchmark_command: "kitt-not-installed-here" });
    await w.start();
    const row = queue(w);
    expect((await terminal(w, row.id)).at(-1)).toBe("failed");
    expect(w.server.getTest(row.id)?.error).toMatch(/kitt-not-installed-here/);
  });

  it("cancel through POST /api/commands kills the benchmark and its grandchild", async () => {
    const w = await world({ grandchild: true, sleepSeconds: 300 });
    const agent = await w.start();
    const row = queue(w);
    await w.server.waitFor(() => w.server.logLines(row.id).some((l) => l.includes("grandchild ")), 15_000);
    const pid = Number(/grandchild (\d+)/.exec(w.server.logLines(row.id).join("\n"))?.[1]);
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    const res = await fetch(`${agent.url}/api/commands`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ command_id: "cancel-1", type: "cancel", payload: { test_id: row.id } }),
    });
    expect(res.status).toBe(202);
    expect(await terminal(w, row.id)).toEqual(["running", "failed"]);
    expect(w.server.getTest(row.id)?.error).toBe("Cancelled by user");
    const gone = async () => {
      try {
        const stat = await readFile(`/proc/${pid}/stat`, "utf8");
        return /\) [ZX] /.test(stat);
      } catch {
        return true;
      }
    };
    for (let i = 0; i < 100 && !(await gone()); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await gone()).toBe(true);
  });

  it("refuses bad input on the local API, runs nothing, keeps serving", async () => {
    const w = await world();
    const agent = await w.start();
    const post = (body: unknown) =>
      fetch(`${agent.url}/api/commands`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify(body) });
    const base = { command_id: "c1", test_id: "t1", type: "run_test", payload: { model_path: MODEL, engine_name: "vllm", suite_name: "quick" } };
    expect((await post({ ...base, payload: { ...base.payload, engine_name: "vllm; rm -rf /" } })).status).toBe(400);
    expect((await post({ ...base, command_id: "c2", payload: { ...base.payload, model_path: "../../etc" } })).status).toBe(400);
    expect((await post({ ...base, command_id: "c3", type: "run_container" })).status).toBe(400);
    expect((await fetch(`${agent.url}/metrics`)).status).toBe(401);
    // The original agent's unauthenticated probe: exactly these fields, nothing else.
    expect(await (await fetch(`${agent.url}/api/status`)).json()).toEqual({ name: AGENT, running: false, active_containers: 0, active_streams: 0 });
    expect(existsSync(join(w.config.state_dir, "runs")) ? await readdir(join(w.config.state_dir, "runs")) : []).toEqual([]);
    expect((await fetch(`${agent.url}/api/health`)).status).toBe(200);
  });

  it("survives the server going down mid-job: every line, one terminal status, the result", async () => {
    const w = await world({ lines: 200, sleepSeconds: 1 });
    await w.start();
    const row = queue(w);
    await w.server.waitFor(() => w.server.statuses(row.id).includes("running"), 15_000);
    await w.server.down();
    await new Promise((r) => setTimeout(r, 1500));
    await w.server.up();
    expect(await terminal(w, row.id, 60_000)).toEqual(["running", "completed"]);
    await w.server.waitFor(() => w.server.results.length === 1, 30_000);
    const steps = w.server
      .logLines(row.id)
      .flatMap((l) => l.split("\n"))
      .filter((l) => /benchmark step/.test(l));
    expect(steps).toHaveLength(200);
    expect(steps.at(-1)).toBe("[200/200] benchmark step 200");
  });

  it("after an unclean stop, the next start reports the running job failed once", async () => {
    const w = await world();
    // What a SIGKILLed agent leaves: the journal record of a job it had accepted.
    const row = queue(w);
    const { mkdir, writeFile } = await import("node:fs/promises");
    await mkdir(join(w.config.state_dir, "jobs"), { recursive: true });
    await writeFile(
      join(w.config.state_dir, "jobs", `${row.command_id}.json`),
      JSON.stringify({ commandId: row.command_id, testId: row.id, type: "run_test", acceptedAt: Date.now() }),
    );
    await w.start();
    await w.server.waitFor(() => w.server.statuses(row.id).includes("failed") && w.server.results.length === 1, 10_000);
    expect(w.server.statuses(row.id)).toEqual(["failed"]);
    expect(w.server.getTest(row.id)?.error).toBe(RESTART_REASON);
    expect(w.server.results[0]?.body).toMatchObject({ command_id: row.command_id, status: "failed", error: RESTART_REASON });
    expect(await openJournalJobs(w.config.state_dir)).toEqual([]);
  });

});
