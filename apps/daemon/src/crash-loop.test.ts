/**
 * The crash loop: a real daemon in a child process is SIGKILLed at random
 * points, 30 times, while jobs are posted to its local API and dispatched by
 * heartbeat. Every job the agent acknowledged (a 202) must end with exactly
 * one terminal outcome and at most one result, its lines in order; no
 * benchmark of a dead agent may outlive the next start.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { useTempDir } from "@kitt/testkit";
import { afterEach, expect, it } from "vitest";

import { AGENT, MODEL, TOKEN, closeWorld, makeWorld, openJournalJobs, type World } from "./test-agent.js";
import { killProcessTree, spawnAgent } from "./test-spawn.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
const pids: number[] = [];
afterEach(async () => {
  for (const pid of pids.splice(0)) killProcessTree(pid);
  await Promise.all(worlds.splice(0).map(closeWorld));
});

const KILLS = 30;
const LINES = 12;

async function alive(pid: number): Promise<boolean> {
  try {
    return !/\) [ZX] /.test(await readFile(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function waitReady(child: ReturnType<typeof spawnAgent>): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`agent not ready within 20 s: ${out}`)), 20_000);
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      const m = /READY (\S+)/.exec(out);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("exit", (code) => reject(new Error(`agent exited (${code}) before it was ready: ${out}`)));
  });
}

it(`crash loop: ${KILLS} SIGKILLs at random points; every acknowledged job ends exactly once, in order, and no benchmark survives its agent`, async () => {
  const w = await makeWorld(await tempDir(), { lines: LINES, sleepSeconds: 0.15, grandchild: true }, { cancel_grace_s: 1, max_queued_jobs: 1000 });
  worlds.push(w);
  const configPath = join(w.dir, "config.json");
  await writeFile(configPath, JSON.stringify(w.config));
  const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
  const posted = new Map<string, string>(); // command id -> test id, acknowledged with 202
  const dispatchedRows: string[] = [];
  const grandchildren = new Set<number>();
  const collectGrandchildren = () => {
    for (const t of w.server.tests()) {
      for (const line of w.server.logLines(t.id).flatMap((l) => l.split("\n"))) {
        const m = /^grandchild (\d+)$/.exec(line);
        if (m?.[1] !== undefined) grandchildren.add(Number(m[1]));
      }
    }
  };
  let seq = 0;

  /** Benchmarks the dead agents started (known from their lines) must be gone once the next agent is up. */
  const checkDeadAgentsLeftNothing = async () => {
    for (const pid of grandchildren) expect(await alive(pid), `benchmark grandchild ${pid} of a dead agent`).toBe(false);
  };
  for (let round = 0; round < KILLS; round++) {
    const child = spawnAgent(configPath);
    if (child.pid !== undefined) pids.push(child.pid);
    const url = await waitReady(child);
    // The restarted agent has recovered: whatever the dead ones started is gone.
    await checkDeadAgentsLeftNothing();

    const killAt = Date.now() + 100 + Math.random() * 700;
    while (Date.now() < killAt) {
      seq++;
      if (seq % 3 === 0) {
        dispatchedRows.push(w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" }).id);
      } else {
        const row = w.server.createTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
        const body = { command_id: row.command_id, test_id: row.id, type: "run_test", payload: { model_path: MODEL, engine_name: "vllm", suite_name: "quick" } };
        const res = await fetch(`${url}/api/commands`, { method: "POST", headers, body: JSON.stringify(body) }).catch(() => undefined);
        if (res?.status === 202) posted.set(row.command_id, row.id);
        await res?.body?.cancel().catch(() => {});
      }
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 40));
    }
    const exited = new Promise((r) => child.once("exit", r));
    process.kill(child.pid!, "SIGKILL");
    await exited;
    // What this agent's benchmarks printed so far (the next agent delivers the rest of its spool).
    collectGrandchildren();
  }

  // One last life, long enough to run what is queued.
  const child = spawnAgent(configPath);
  if (child.pid !== undefined) pids.push(child.pid);
  await waitReady(child);
  await checkDeadAgentsLeftNothing();
  const terminal = (testId: string) => w.server.statuses(testId).some((s) => s === "completed" || s === "failed");
  // Every acknowledged job ends, and so does every row the heartbeat dispatched: one whose agent died
  // before recording it is found by the next start (the server's list of dispatched rows) and reported.
  const settled = () => [...posted.values()].every(terminal) && dispatchedRows.every((id) => w.server.getTest(id)?.status !== "dispatched" && w.server.getTest(id)?.status !== "queued" ? terminal(id) : false);
  await w.server.waitFor(settled, 180_000);
  await new Promise((r) => setTimeout(r, 1_000));
  await w.server.waitFor(settled, 60_000);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  process.kill(child.pid!, "SIGTERM");
  expect(await exited).toBe(0);
  // Spooled lines of dead agents arrived meanwhile: none of the benchmarks they name survives, nor this agent's.
  collectGrandchildren();
  await checkDeadAgentsLeftNothing();

  expect(posted.size).toBeGreaterThan(KILLS);
  let resent = 0;
  let replayedLines = 0;
  const touched = dispatchedRows;
  for (const [commandId, testId] of [...posted.entries(), ...touched.map((id) => [w.server.getTest(id)?.command_id ?? "", id] as const)]) {
    const statuses = w.server.statuses(testId);
    const ends = new Set(statuses.filter((s) => s === "completed" || s === "failed"));
    expect(ends.size, `test ${testId}: ${statuses.join(",")}`).toBe(1);
    // Nothing after the end: the terminal status is the last word.
    expect(statuses.at(-1) === "completed" || statuses.at(-1) === "failed", `test ${testId}: ${statuses.join(",")}`).toBe(true);
    const results = w.server.results.filter((r) => r.body.command_id === commandId);
    expect(new Set(results.map((r) => r.body.status)).size, `results of ${commandId}`).toBeLessThanOrEqual(1);
    // At most one, except the one case the server's row cannot tell: a failed result without data the
    // dead agent had delivered just before it was killed (between the server's answer and removing its
    // file) is sent again, identical. Anything else twice is a bug.
    const detail = `results of ${commandId}: ${JSON.stringify(results.map((r) => r.body))}, statuses ${statuses.join(",")}`;
    const identical = new Set(results.map((r) => JSON.stringify(r.body))).size <= 1;
    const undetectable = results.every((r) => r.body.result_data === undefined) && identical;
    expect(results.length, detail).toBeLessThanOrEqual(undetectable ? 2 : 1);
    if (results.length === 2) resent++;
    const steps = w.server.logLines(testId).flatMap((l) => l.split("\n")).flatMap((l) => /^\[(\d+)\/\d+\] benchmark step/.exec(l)?.[1] ?? []).map(Number);
    // In order and none missing. A spool resent after a kill (at-least-once: the server took a batch,
    // the agent died before noting it) repeats a stretch already delivered; nothing else may repeat.
    const firstCopies: number[] = [];
    for (const step of steps) {
      const last = firstCopies.at(-1) ?? 0;
      if (step === last + 1) firstCopies.push(step);
      else if (step > last) expect.fail(`lines of ${testId}: step ${step} after ${last} (a gap): ${steps.join(",")}`);
      else replayedLines++;
    }
    if ([...ends][0] === "completed") expect(firstCopies, `lines of ${testId}`).toHaveLength(LINES);
  }
  const lostReported = dispatchedRows.filter((id) => w.server.getTest(id)?.error?.startsWith("The agent went down after the server dispatched") === true).length;
  process.stdout.write(`crash loop: ${resent} failed result(s) without data and ${replayedLines} log line(s) sent twice (delivered just before a kill)\n`);
  process.stdout.write(`crash loop: ${posted.size} jobs acknowledged over the API, ${dispatchedRows.length} dispatched by heartbeat, of which ${lostReported} were lost in a kill before the journal and reported failed by the next start\n`);
  expect(await openJournalJobs(w.config.state_dir)).toEqual([]);
}, 600_000);
