import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { useTempDir } from "@kitt/testkit";
import { afterEach, expect, it } from "vitest";

import { RESTART_REASON } from "./agent.js";
import { AGENT, MODEL, closeWorld, makeWorld, openJournalJobs, type World } from "./test-agent.js";
import { killProcessTree, spawnAgent as spawnChild } from "./test-spawn.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
const pids: number[] = [];
afterEach(async () => {
  for (const pid of pids.splice(0)) killProcessTree(pid);
  await Promise.all(worlds.splice(0).map(closeWorld));
});

/**
 * Kills every process whose command line mentions `marker`, with its whole
 * process group (the benchmark leads its own): what systemd's control-group
 * kill does when it restarts the service.
 */
async function killAllMentioning(marker: string): Promise<number> {
  let n = 0;
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if ((await readFile(`/proc/${entry}/cmdline`, "utf8")).includes(marker)) {
        try {
          process.kill(-Number(entry), "SIGKILL");
        } catch {
          process.kill(Number(entry), "SIGKILL");
        }
        n++;
      }
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

function spawnAgent(configPath: string) {
  const child = spawnChild(configPath);
  if (child.pid !== undefined) pids.push(child.pid);
  return child;
}

it("an agent SIGKILLed mid-job: the restarted agent reports the job failed once, reuses no partial model, drains the outbox", async () => {
  const w = await makeWorld(await tempDir(), { sleepSeconds: 300, lines: 3 });
  worlds.push(w);
  const configPath = join(w.dir, "config.json");
  await writeFile(configPath, JSON.stringify(w.config));

  const child = spawnAgent(configPath);
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  const row = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
  await w.server.waitFor(() => w.server.logLines(row.id).join("\n").includes("[3/3] benchmark step 3"), 20_000);
  expect(out).toContain("READY");

  // The agent dies without a word; systemd's restart kills the rest of the service's cgroup (the benchmark).
  process.kill(child.pid!, "SIGKILL");
  await new Promise((r) => child.once("exit", r));
  expect(await killAllMentioning(join(w.dir, "bin"))).toBeGreaterThan(0);
  expect(w.server.statuses(row.id)).toEqual(["running"]);

  const agent = await w.start();
  await w.server.waitFor(() => w.server.statuses(row.id).length === 2 && w.server.results.length === 1, 15_000);
  expect(w.server.statuses(row.id)).toEqual(["running", "failed"]);
  expect(w.server.getTest(row.id)?.error).toBe(RESTART_REASON);
  expect(w.server.results[0]?.body).toMatchObject({ command_id: row.command_id, status: "failed" });

  // A fresh job stages again from scratch and completes: the copy left behind is not taken as complete.
  const next = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
  await w.server.waitFor(() => w.server.statuses(next.id).includes("running"), 15_000);
  const status = (await (await fetch(`${agent.url}/api/status`, { headers: { authorization: "Bearer e2e-token-0123456789" } })).json()) as { running: boolean };
  expect(status.running).toBe(true);
  await fetch(`${agent.url}/api/commands`, {
    method: "POST",
    headers: { authorization: "Bearer e2e-token-0123456789", "content-type": "application/json" },
    body: JSON.stringify({ command_id: "cancel-next", type: "cancel", payload: { test_id: next.id } }),
  });
  await w.server.waitFor(() => w.server.statuses(next.id).includes("failed") && w.server.results.length === 2, 15_000);
  await agent.stop();
  expect(await openJournalJobs(w.config.state_dir)).toEqual([]);
  expect(existsSync(join(w.config.state_dir, "outbox")) ? (await readdir(join(w.config.state_dir, "outbox"))).filter((f) => f.endsWith(".json")) : []).toEqual([]);
});

it("a second signal kills a benchmark that ignores SIGTERM, and the agent exits at once", async () => {
  const w = await makeWorld(await tempDir(), { sleepSeconds: 300, lines: 1, ignoreSigterm: true, grandchild: true }, { cancel_grace_s: 60 });
  worlds.push(w);
  const configPath = join(w.dir, "config.json");
  await writeFile(configPath, JSON.stringify(w.config));
  const child = spawnAgent(configPath);
  const row = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
  await w.server.waitFor(() => w.server.logLines(row.id).join("\n").includes("grandchild "), 20_000);
  const grandchild = Number(/grandchild (\d+)/.exec(w.server.logLines(row.id).join("\n"))?.[1]);
  expect(existsSync(`/proc/${grandchild}`)).toBe(true);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  // First signal: graceful stop begins; the benchmark ignores SIGTERM and the grace period is 60 s.
  process.kill(child.pid!, "SIGTERM");
  await w.server.waitFor(() => w.server.logLines(row.id).join("\n").includes("Cancel requested"), 10_000);
  process.kill(child.pid!, "SIGTERM");
  expect(await exited).toBe(1);
  const gone = async () => {
    try {
      return /\) [ZX] /.test(await readFile(`/proc/${grandchild}/stat`, "utf8"));
    } catch {
      return true;
    }
  };
  for (let i = 0; i < 100 && !(await gone()); i++) await new Promise((r) => setTimeout(r, 20));
  expect(await gone()).toBe(true);
});

it("the first SIGTERM stops gracefully: the running job is reported failed, the pid file goes, exit 0", async () => {
  const w = await makeWorld(await tempDir(), { sleepSeconds: 300, lines: 1, grandchild: true });
  worlds.push(w);
  const configPath = join(w.dir, "config.json");
  await writeFile(configPath, JSON.stringify(w.config));
  const child = spawnAgent(configPath);
  const row = w.server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
  await w.server.waitFor(() => w.server.logLines(row.id).join("\n").includes("grandchild "), 20_000);
  const grandchild = Number(/grandchild (\d+)/.exec(w.server.logLines(row.id).join("\n"))?.[1]);
  expect(existsSync(join(w.config.state_dir, "agent.pid"))).toBe(true);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  process.kill(child.pid!, "SIGTERM");
  expect(await exited).toBe(0);
  // Everything was delivered before the exit: the terminal status and the result.
  expect(w.server.statuses(row.id)).toEqual(["running", "failed"]);
  expect(w.server.getTest(row.id)?.error).toMatch(/^Agent shutting down/);
  expect(w.server.results.at(-1)?.body).toMatchObject({ command_id: row.command_id, status: "failed" });
  expect(existsSync(join(w.config.state_dir, "agent.pid"))).toBe(false);
  expect(existsSync(`/proc/${grandchild}`) && !/\) [ZX] /.test(await readFile(`/proc/${grandchild}/stat`, "utf8").catch(() => ") X "))).toBe(false);
});
