import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { useTempDir } from "@kitt/testkit";

import { JobJournal } from "./job-journal.js";
import { JobRunner } from "./job-runner.js";
import { until } from "./test-processes.js";
import { DirResolver, RecordingReporter, writeFakeKitt } from "./test-runner-fixtures.js";

const tempDir = useTempDir(afterEach, "kitt-runner-recover-");
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/**
 * The built JobRunner in a child process, set up as `setup().make()` sets up
 * its own (same work, state and share dirs, the fake kitt on PATH, waiting on
 * a gate that never opens), given `commands`; the benchmark's log lines come
 * out on its stdout, one per line.
 */
function spawnCrashingAgent(root: string, commands: object[]) {
  const script = `
    import { JobRunner } from ${JSON.stringify(new URL("../dist/index.js", import.meta.url).pathname)};
    const root = ${JSON.stringify(root)};
    const runner = new JobRunner({
      resolver: { resolve: async (modelPath) => ({ localPath: modelPath, staged: false, release: () => {} }) },
      reporter: { status() {}, result() {}, log(_testId, line) { process.stdout.write(line + "\\n"); } },
      workDir: root + "/work",
      stateDir: root + "/state",
      env: { PATH: root + "/bin:/usr/bin:/bin", FAKE_GATE: "/nonexistent/gate" },
      killGraceMs: 1000,
    });
    await runner.recoverInterrupted();
    for (const c of ${JSON.stringify(commands)}) await runner.submit(c).persisted;
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
  const lineMatching = (re: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const hit = out.split("\n").find((l) => re.test(l));
        if (hit !== undefined) resolve(hit);
        return hit !== undefined;
      };
      if (check()) return;
      child.stdout.on("data", check);
      child.once("exit", (code) => reject(new Error(`the crashing agent exited (${code}) before printing ${re}: ${out}`)));
    });
  return { child, lineMatching };
}

async function setup() {
  const root = await tempDir();
  const share = join(root, "share");
  await mkdir(join(share, "m"), { recursive: true });
  await writeFile(join(share, "m", "config.json"), "{}");
  const binDir = join(root, "bin");
  await writeFakeKitt(binDir);
  const make = (env: Record<string, string> = {}) => {
    const reporter = new RecordingReporter();
    const runner = new JobRunner({
      resolver: new DirResolver(share, join(root, "staging")),
      reporter,
      workDir: join(root, "work"),
      stateDir: join(root, "state"),
      env: { PATH: `${binDir}:/usr/bin:/bin`, ...env },
      killGraceMs: 1000,
    });
    return { runner, reporter };
  };
  const command = (id: string) => ({
    kind: "run_test" as const,
    command_id: `c${id}`,
    test_id: `t${id}`,
    type: "run_test" as const,
    payload: { model_path: join(share, "m"), engine_name: "vllm", suite_name: "quick" },
  });
  return { root, make, command, journalDir: join(root, "state", "jobs") };
}

/** The journal's records, as a restarted agent would replay them (this compacts the file). */
async function replay(dir: string) {
  const journal = new JobJournal(dir);
  const open = await journal.load();
  await journal.close();
  return open;
}

async function journalLines(dir: string): Promise<{ t: string; c: string }[]> {
  const text = await readFile(join(dir, "journal.log"), "utf8").catch(() => "");
  // Only whole lines: the runner may be appending one right now (a job starting), and what follows
  // the last newline is that line half-written.
  return text.split("\n").slice(0, -1).filter((l) => l !== "").map((l) => JSON.parse(l) as { t: string; c: string });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

describe("JobRunner: jobs interrupted by a crash", () => {
  it("a finished job leaves nothing open in the journal", async () => {
    const t = await setup();
    const { runner } = t.make();
    await runner.recoverInterrupted();
    const r = runner.submit(t.command("1"));
    await r.persisted;
    await runner.whenIdle();
    expect(await replay(t.journalDir)).toEqual([]);
  });

  it("the next start kills the benchmark the dead agent left, reports the running and the queued job failed once, and removes their output dirs", async () => {
    const t = await setup();
    // The agent that crashes: one job running, one queued, in a process of its own that is then
    // SIGKILLed, so that it never reports them (nor, as an in-process stand-in would once the
    // restart kills its benchmark, goes on to start the queued job).
    const crashed = spawnCrashingAgent(t.root, [t.command("1"), t.command("2")]);
    children.push(crashed.child);
    const grandchild = Number(/^grandchild (\d+)$/m.exec(await crashed.lineMatching(/^grandchild \d+$/))?.[1]);
    expect(alive(grandchild)).toBe(true);
    await until(async () => (await journalLines(t.journalDir)).some((e) => e.t === "p" && e.c === "c1"), "the process group journaled", 30_000);
    // The run's output dir and, beside it, the file its output goes to.
    const runs = (await readdir(join(t.root, "work", "runs"))).sort();
    expect(runs).toHaveLength(2);
    expect(runs[1]).toBe(`${runs[0]}.output`);
    crashed.child.kill("SIGKILL");
    await once(crashed.child, "exit");

    const restarted = t.make();
    expect(await restarted.runner.recoverInterrupted()).toEqual(["c1", "c2"]);
    // Killed before its run directory went: nothing of the dead agent's benchmark survives.
    expect(alive(grandchild)).toBe(false);
    expect(restarted.reporter.trail()).toEqual(["result c1 failed", "status t1 failed", "result c2 failed", "status t2 failed"]);
    expect(restarted.reporter.statuses("t1")).toEqual([{ status: "failed", error: "Agent restarted during the job" }]);
    expect(await replay(t.journalDir)).toEqual([]);
    await expect(readdir(join(t.root, "work", "runs"))).rejects.toThrow(/ENOENT/);
    expect(await t.make().runner.recoverInterrupted()).toEqual([]);
  });

  it("an outcome decided before the crash is the one reported, never a second, different one", async () => {
    const t = await setup();
    // A kill between writing the outcome and the outbox taking it.
    const journal = new JobJournal(t.journalDir);
    await journal.load();
    await journal.accepted({ commandId: "c9", testId: "t9", type: "run_test", acceptedAt: 1 });
    await journal.outcome("c9", { status: "completed", resultData: { throughput: 1.5 } });
    await journal.close();

    const restarted = t.make();
    expect(await restarted.runner.recoverInterrupted()).toEqual(["c9"]);
    expect(restarted.reporter.trail()).toEqual(["result c9 completed", "status t9 completed"]);
    expect(restarted.reporter.results("c9")[0]?.result_data).toEqual({ throughput: 1.5 });
    expect(await replay(t.journalDir)).toEqual([]);
  });

  it("a command sent again after a restart is a duplicate, not a new job", async () => {
    const t = await setup();
    const first = t.make();
    await first.runner.recoverInterrupted();
    await first.runner.submit(t.command("1")).persisted;
    await first.runner.whenIdle();

    const restarted = t.make();
    await restarted.runner.recoverInterrupted();
    expect(restarted.runner.submit(t.command("1"))).toMatchObject({ accepted: false, error: "command c1 was already received", reported: false });
    expect(restarted.reporter.trail()).toEqual([]);
    expect(restarted.runner.submit(t.command("2")).accepted).toBe(true);
    await restarted.runner.whenIdle();
  });

  it("3,000 commands at once: each acceptance or refusal is on disk before it is acknowledged, with a handful of fsyncs", async () => {
    const t = await setup();
    const { runner, reporter } = t.make({ FAKE_GATE: "/nonexistent/gate" });
    await runner.recoverInterrupted();
    const results = Array.from({ length: 3000 }, (_, i) => runner.submit(t.command(`${i}`)));
    await Promise.all(results.map((r) => r.persisted));
    const lines = await journalLines(t.journalDir);
    // 1 running + 16 queued accepted; the rest refused for a full queue, each recorded (accepted + outcome).
    expect(results.filter((r) => r.accepted)).toHaveLength(17);
    expect(new Set(lines.filter((e) => e.t === "a").map((e) => e.c)).size).toBe(3000);
    expect(lines.filter((e) => e.t === "o")).toHaveLength(2983);
    // One fsync per command would be 3,000 or more; group commit needs a handful (more under load).
    expect(runner.journalSyncs).toBeLessThan(100);
    await until(() => reporter.results().length === 2983, "every refusal reported");
    await runner.shutdown();
  });

  it("a refusal naming a running job's test posts no status to that test", async () => {
    const t = await setup();
    const { runner, reporter } = t.make({ FAKE_GATE: "/nonexistent/gate" });
    await runner.recoverInterrupted();
    await runner.submit(t.command("1")).persisted;
    await until(() => reporter.lines("t1").some((l) => l.startsWith("grandchild ")), "the benchmark to start");
    const bad = runner.submit({ kind: "unknown", command_id: "c-bad", test_id: "t1", type: "frobnicate", payload: {} });
    expect(bad).toMatchObject({ accepted: false, error: "unsupported command type: frobnicate" });
    await bad.persisted;
    await until(() => reporter.results("c-bad").length === 1, "the refusal's result");
    expect(reporter.statuses("t1")).toEqual([{ status: "running" }]);
    await runner.shutdown();
    expect(reporter.statuses("t1").map((u) => u.status)).toEqual(["running", "failed"]);
  });
});
