import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { MemoryLogger, type ServerCommand } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";

import { JobRunner, type JobRunnerOptions } from "./job-runner.js";
import { isAlive, until, waitGone, writeScript } from "./test-processes.js";
import { DirResolver, RecordingReporter, writeFakeKitt } from "./test-runner-fixtures.js";

const tempDir = useTempDir(afterEach, "kitt-runner-job-");

async function setup(overrides: Partial<JobRunnerOptions> = {}, env: Record<string, string> = {}) {
  const root = await tempDir();
  const share = join(root, "share");
  const binDir = join(root, "bin");
  await mkdir(join(share, "Qwen-0.5B"), { recursive: true });
  await writeFile(join(share, "Qwen-0.5B", "config.json"), '{"arch":"qwen"}');
  await mkdir(join(share, "Llama-1B"), { recursive: true });
  await writeFile(join(share, "Llama-1B", "config.json"), '{"arch":"llama"}');
  await writeFakeKitt(binDir);
  const resolver = new DirResolver(share, join(root, "staging"));
  const reporter = new RecordingReporter();
  const logger = new MemoryLogger();
  const runner = new JobRunner({
    resolver,
    reporter,
    workDir: join(root, "work"),
    env: { PATH: `${binDir}:/usr/bin:/bin`, ...env },
    killGraceMs: 2000,
    logger,
    ...overrides,
  });
  return { root, share, binDir, resolver, reporter, runner, logger, workDir: join(root, "work") };
}

function runTest(id: string, payload: Record<string, unknown>): ServerCommand {
  return {
    kind: "run_test",
    command_id: `c-${id}`,
    test_id: `t-${id}`,
    type: "run_test",
    payload: { engine_name: "vllm", suite_name: "quick", engine_mode: "docker", profile_id: "", ...payload } as never,
  };
}

async function settle(): Promise<void> {
  await new Promise((r) => setImmediate(r));
}

describe("JobRunner: run_test", () => {
  it("happy path: running -> staged model -> benchmark lines -> result with metrics.json -> completed; output dir removed", async () => {
    const t = await setup();
    const res = t.runner.submit(runTest("1", { model_path: join(t.share, "Qwen-0.5B") }));
    expect(res.accepted).toBe(true);
    await t.runner.whenIdle();
    expect(t.reporter.trail()).toEqual(["status t-1 running", "result c-1 completed", "status t-1 completed"]);
    const [result] = t.reporter.results("c-1");
    expect(result).toEqual({ command_id: "c-1", status: "completed", container_id: "", error: "", result_data: { throughput_tps: 42.5, suite: "quick" } });
    const lines = t.reporter.lines("t-1");
    const staged = join(t.root, "staging", "Qwen-0.5B");
    expect(lines).toContain(`model=${staged} engine=vllm suite=quick mode=docker`);
    expect(lines).toContain('config: {"arch":"qwen"}');
    expect(lines).toContain("a warning");
    const progress = lines.indexOf("loading 50%");
    expect(lines[progress + 1]).toBe("loading 100%");
    expect(lines.indexOf(`Copying ${join(t.share, "Qwen-0.5B")} to ${staged}`)).toBeLessThan(progress);
    expect(lines.at(-1)).toBe("Job completed");
    // The LogStream saw the same lines, numbered, and ended with the outcome.
    const job = t.runner.job("c-1");
    expect(job?.logs.buffered().map((e) => e.line)).toEqual(lines);
    expect(job?.info()).toMatchObject({ state: "completed", outcome: { status: "completed" } });
    // Output dir (under work/runs) removed; the model stays staged without auto_cleanup.
    expect(await readdir(join(t.workDir, "runs"))).toEqual([]);
    expect(await t.resolver.staged()).toEqual(["Qwen-0.5B"]);
    expect(t.resolver.calls).toEqual([`resolve ${join(t.share, "Qwen-0.5B")}`, `release ${join(t.share, "Qwen-0.5B")}`]);
  });

  it("a subscriber that never reads loses lines (and is told) but does not hold the job back", async () => {
    const t = await setup();
    t.runner.submit(runTest("1", { model_path: join(t.share, "Qwen-0.5B") }));
    const sub = t.runner.job("c-1")?.logs.subscribe({ maxQueue: 2 });
    expect(t.runner.activeStreams).toBe(1);
    await t.runner.whenIdle();
    expect(t.reporter.statuses("t-1").at(-1)).toEqual({ status: "completed" });
    const events = [];
    for await (const e of sub ?? []) events.push(e);
    // It reads at last: the lines it fell behind by are counted, then the newest two.
    expect(events[0]).toEqual({ type: "dropped", count: t.reporter.lines("t-1").length - 2 });
    expect(events.slice(1, 3).map((e) => e.type === "line" && e.line)).toEqual(t.reporter.lines("t-1").slice(-2));
    expect(events[3]).toMatchObject({ type: "end", info: { status: "completed" } });
    expect(t.runner.activeStreams).toBe(0);
  });

  it("with auto_cleanup evicts the model after the run, unless a queued job needs it", async () => {
    const t = await setup({ autoCleanup: () => true });
    const model = join(t.share, "Qwen-0.5B");
    t.runner.submit(runTest("1", { model_path: model }));
    t.runner.submit(runTest("2", { model_path: model }));
    t.runner.submit(runTest("3", { model_path: join(t.share, "Llama-1B") }));
    await t.runner.whenIdle();
    expect(t.reporter.lines("t-1")).toContain(`auto_cleanup: keeping ${model}, another job uses it`);
    expect(t.reporter.lines("t-2")).toContain(`auto_cleanup: evicted ${model}`);
    expect(t.resolver.calls.filter((c) => c.startsWith("evict"))).toEqual([`evict ${model}`, `evict ${join(t.share, "Llama-1B")}`]);
    expect(await t.resolver.staged()).toEqual([]);
  });

  it("a registry name is passed through as is and never evicted", async () => {
    const t = await setup({ autoCleanup: true });
    t.runner.submit(runTest("1", { model_path: "qwen2.5:7b", engine_name: "ollama", engine_mode: null }));
    await t.runner.whenIdle();
    expect(t.reporter.lines("t-1")).toContain("model=qwen2.5:7b engine=ollama suite=quick mode=");
    expect(t.reporter.statuses("t-1").at(-1)).toEqual({ status: "completed" });
    expect(t.resolver.calls.filter((c) => c.startsWith("evict"))).toEqual([]);
  });

  it("keeps the agent's own settings (and token) out of the benchmark's environment", async () => {
    const t = await setup({}, { KITT_AGENT_TOKEN: "s3cret-agent-token", KITT_SOMETHING: "kept" });
    const script = await writeScript(t.binDir, "envdump", 'echo "token=${KITT_AGENT_TOKEN:-unset} other=$KITT_SOMETHING py=$PYTHONUNBUFFERED"');
    const runner = new JobRunner({ resolver: t.resolver, reporter: t.reporter, workDir: t.workDir, benchmarkCommand: script, env: { KITT_AGENT_TOKEN: "s3cret-agent-token", KITT_SOMETHING: "kept", PATH: "/usr/bin:/bin" } });
    runner.submit(runTest("1", { model_path: join(t.share, "Qwen-0.5B") }));
    await runner.whenIdle();
    expect(t.reporter.lines("t-1")).toContain("token=unset other=kept py=1");
  });

  it("a non-zero exit fails the job with `Exit <code>` and sends no result_data", async () => {
    const t = await setup({}, { FAKE_EXIT: "3" });
    t.runner.submit(runTest("1", { model_path: join(t.share, "Qwen-0.5B") }));
    await t.runner.whenIdle();
    expect(t.reporter.statuses("t-1")).toEqual([{ status: "running" }, { status: "failed", error: "Exit 3" }]);
    expect(t.reporter.results()).toEqual([{ command_id: "c-1", status: "failed", container_id: "", error: "Exit 3" }]);
    expect(await readdir(join(t.workDir, "runs"))).toEqual([]);
  });

  it("invalid metrics.json: completed without result_data, and a log line says why", async () => {
    const t = await setup({}, { FAKE_METRICS: "{not json" });
    t.runner.submit(runTest("1", { model_path: join(t.share, "Qwen-0.5B") }));
    await t.runner.whenIdle();
    expect(t.reporter.results()).toEqual([{ command_id: "c-1", status: "completed", container_id: "", error: "" }]);
    expect(t.reporter.lines("t-1").some((l) => /^metrics\.json is not valid JSON .*: result sent without result_data$/.test(l))).toBe(true);
  });

  it("a missing benchmark command fails with a clear error before any staging", async () => {
    const t = await setup({ benchmarkCommand: "kitt-missing" });
    t.runner.submit(runTest("1", { model_path: join(t.share, "Qwen-0.5B") }));
    await t.runner.whenIdle();
    expect(t.reporter.statuses("t-1")).toEqual([{ status: "running" }, { status: "failed", error: 'benchmark command "kitt-missing" not found on PATH' }]);
    expect(t.resolver.calls).toEqual([]);
  });

  it("a model that cannot be staged fails the job with the resolver's reason", async () => {
    const t = await setup();
    t.runner.submit(runTest("1", { model_path: join(t.share, "Nope") }));
    await t.runner.whenIdle();
    expect(t.reporter.statuses("t-1").at(-1)).toEqual({ status: "failed", error: `model staging failed: model not found: ${join(t.share, "Nope")}` });
  });
});

describe("JobRunner: cancel", () => {
  it("cancel by test id kills the benchmark and its grandchild; the job ends `Cancelled by user`", async () => {
    const t = await setup({}, { FAKE_GATE: "/nonexistent/gate" });
    t.runner.submit(runTest("1", { model_path: join(t.share, "Qwen-0.5B") }));
    await until(() => t.reporter.lines("t-1").some((l) => l.startsWith("grandchild ")), "the grandchild to start");
    const grandchild = Number(t.reporter.lines("t-1").find((l) => l.startsWith("grandchild "))?.split(" ")[1]);
    const leader = t.runner.job("c-1")?.execution?.pid;
    expect(leader).toBeGreaterThan(0);
    expect(await isAlive(grandchild)).toBe(true);
    expect(t.runner.cancel("t-1")).toBe(true);
    await t.runner.whenIdle();
    expect(t.reporter.statuses("t-1")).toEqual([{ status: "running" }, { status: "failed", error: "Cancelled by user" }]);
    expect(t.reporter.results()).toEqual([{ command_id: "c-1", status: "failed", container_id: "", error: "Cancelled by user" }]);
    expect(await waitGone(leader as number)).toBe(true);
    expect(await waitGone(grandchild)).toBe(true);
    expect(await readdir(join(t.workDir, "runs"))).toEqual([]);
    expect(t.runner.cancel("t-1")).toBe(false);
  });

  it("cancel while staging aborts the resolver; cancel of a queued job removes it without running it", async () => {
    const t = await setup();
    t.resolver.hold = new Promise(() => {});
    t.runner.submit(runTest("1", { model_path: join(t.share, "Qwen-0.5B") }));
    t.runner.submit(runTest("2", { model_path: join(t.share, "Qwen-0.5B") }));
    await until(() => t.resolver.calls.length === 1, "staging to start");
    expect(t.runner.cancel("c-2")).toBe(true);
    expect(t.runner.cancel("c-1", "Agent shutting down")).toBe(true);
    await t.runner.whenIdle();
    expect(t.reporter.trail()).toEqual([
      "status t-1 running",
      "result c-2 failed",
      "status t-2 failed",
      "result c-1 failed",
      "status t-1 failed",
    ]);
    expect(t.reporter.statuses("t-1").at(-1)).toEqual({ status: "failed", error: "Agent shutting down" });
    expect(t.reporter.statuses("t-2")).toEqual([{ status: "failed", error: "Cancelled by user" }]);
  });

  it("shutdown() refuses new jobs and cancels the running and queued ones", async () => {
    const t = await setup({}, { FAKE_GATE: "/nonexistent/gate" });
    t.runner.submit(runTest("1", { model_path: join(t.share, "Qwen-0.5B") }));
    t.runner.submit(runTest("2", { model_path: join(t.share, "Qwen-0.5B") }));
    await until(() => t.reporter.lines("t-1").some((l) => l.startsWith("grandchild ")), "the benchmark to start");
    await t.runner.shutdown();
    expect(t.reporter.statuses("t-1").at(-1)).toEqual({ status: "failed", error: "Agent shutting down" });
    expect(t.reporter.statuses("t-2")).toEqual([{ status: "failed", error: "Agent shutting down" }]);
    const late = t.runner.submit(runTest("3", { model_path: join(t.share, "Qwen-0.5B") }));
    expect(late).toMatchObject({ accepted: false, error: "Agent shutting down", reported: true });
  });
});

describe("JobRunner: queue", () => {
  it("runs one job at a time in FIFO order and reports a job refused for a full queue as failed", async () => {
    const t = await setup();
    const record = join(t.root, "record");
    const runner = new JobRunner({
      resolver: t.resolver,
      reporter: t.reporter,
      workDir: t.workDir,
      env: { PATH: `${t.binDir}:/usr/bin:/bin`, FAKE_RECORD: record },
      maxQueued: 2,
    });
    const suites = ["quick", "standard", "performance"] as const;
    for (const [i, suite] of suites.entries()) {
      expect(runner.submit(runTest(String(i + 1), { model_path: join(t.share, "Qwen-0.5B"), suite_name: suite })).accepted).toBe(true);
    }
    expect(runner.runningCount).toBe(1);
    expect(runner.queuedCount).toBe(2);
    const refused = runner.submit(runTest("4", { model_path: join(t.share, "Qwen-0.5B") }));
    expect(refused).toMatchObject({ accepted: false, error: "job queue is full (2 jobs waiting)", reported: true });
    await runner.whenIdle();
    await settle();
    const order = (await readFile(record, "utf8")).trim().split("\n").map((l) => l.split(" ")[0]);
    expect(order).toEqual(["quick", "standard", "performance"]);
    expect(t.reporter.trail()).toEqual([
      "status t-1 running",
      "result c-4 failed",
      "status t-4 failed",
      "result c-1 completed",
      "status t-1 completed",
      "status t-2 running",
      "result c-2 completed",
      "status t-2 completed",
      "status t-3 running",
      "result c-3 completed",
      "status t-3 completed",
    ]);
    // Each run had a fresh output dir.
    const dirs = (await readFile(record, "utf8")).trim().split("\n").map((l) => l.split(" ")[1]);
    expect(new Set(dirs).size).toBe(3);
  });

  it("a command id seen before is not run twice", async () => {
    const t = await setup();
    const cmd = runTest("1", { model_path: join(t.share, "Qwen-0.5B") });
    expect(t.runner.submit(cmd).accepted).toBe(true);
    expect(t.runner.submit(cmd)).toMatchObject({ accepted: false, error: "command c-1 was already received", reported: false });
    await t.runner.whenIdle();
    expect(t.runner.submit(cmd).accepted).toBe(false);
    expect(t.reporter.trail().filter((e) => e.startsWith("status"))).toEqual(["status t-1 running", "status t-1 completed"]);
  });
});

describe("JobRunner: onIdle", () => {
  it("fires once the last job ended and nothing waits, and after a refusal reported while idle; never while a job waits", async () => {
    const idle: string[] = [];
    const ref: { runner?: JobRunner } = {};
    const t = await setup({ onIdle: () => idle.push(`idle running=${ref.runner?.runningCount} queued=${ref.runner?.queuedCount}`) });
    ref.runner = t.runner;
    for (const id of ["1", "2", "3"]) expect(t.runner.submit(runTest(id, { model_path: join(t.share, "Qwen-0.5B") })).accepted).toBe(true);
    await t.runner.whenIdle();
    // Three jobs, one idle moment: after the third.
    expect(idle).toEqual(["idle running=0 queued=0"]);
    expect(t.reporter.trail().at(-1)).toBe("status t-3 completed");

    const refused = t.runner.submit({ kind: "unknown", command_id: "c-9", test_id: "t-9", type: "flash_bios", payload: {} } as ServerCommand);
    expect(refused.accepted).toBe(false);
    await until(() => idle.length === 2, "onIdle after the refusal");
    // Called after the refusal was reported, so the server already knows.
    expect(t.reporter.trail().at(-1)).toBe("status t-9 failed");

    // A callback that throws is logged, the runner goes on.
    const t2 = await setup({ onIdle: () => { throw new Error("boom"); } });
    t2.runner.submit(runTest("4", { model_path: join(t2.share, "Qwen-0.5B") }));
    await t2.runner.whenIdle();
    expect(t2.logger.records.some((r) => r.level === "error" && /onIdle callback failed: boom/.test(r.message))).toBe(true);
  });
});

describe("JobRunner: refused commands", () => {
  it("unsupported types and invalid commands are reported failed, nothing runs", async () => {
    const t = await setup();
    const start: ServerCommand = { kind: "unknown", command_id: "c-9", test_id: "t-9", type: "flash_bios", payload: {} };
    expect(t.runner.submit(start)).toMatchObject({ accepted: false, error: "unsupported command type: flash_bios", reported: true });
    const invalid: ServerCommand = { kind: "invalid", command_id: "c-8", test_id: "t-8", type: "run_test", error: "invalid command: payload is required", raw: {} };
    expect(t.runner.submit(invalid).accepted).toBe(false);
    await settle();
    expect(t.reporter.statuses("t-9")).toEqual([{ status: "failed", error: "unsupported command type: flash_bios" }]);
    expect(t.reporter.results("c-8")).toEqual([{ command_id: "c-8", status: "failed", container_id: "", error: "invalid command: payload is required" }]);
    expect(t.resolver.calls).toEqual([]);
  });

  it("refuses `x/../../dir` ids and a shell in engine_name with nothing created on disk", async () => {
    const t = await setup();
    const evil = { ...runTest("1", { model_path: join(t.share, "Qwen-0.5B") }), command_id: "x/../../dir" } as ServerCommand;
    const res = t.runner.submit(evil);
    expect(res).toMatchObject({ accepted: false, error: 'invalid run_test command: command_id must match ^[A-Za-z0-9_-]{1,64}$, got "x/../../dir"' });
    const shell = t.runner.submit(runTest("2", { model_path: join(t.share, "Qwen-0.5B"), engine_name: "vllm; rm -rf /" }));
    expect(shell).toMatchObject({ accepted: false, error: expect.stringContaining('payload.engine_name must be one of vllm, llama_cpp, ollama, exllamav2, mlx, got "vllm; rm -rf /"') });
    await settle();
    expect(t.reporter.statuses("t-2")).toEqual([{ status: "failed", error: (shell as { error: string }).error }]);
    await expect(readdir(t.workDir)).rejects.toThrow(/ENOENT/);
    expect(t.resolver.calls).toEqual([]);
  });
});

describe("JobRunner: cleanup_storage", () => {
  it("`__cleanup__` removes every staged model; a path removes that one", async () => {
    const t = await setup();
    t.runner.submit(runTest("1", { model_path: join(t.share, "Qwen-0.5B") }));
    t.runner.submit(runTest("2", { model_path: join(t.share, "Llama-1B") }));
    await t.runner.whenIdle();
    expect(await t.resolver.staged()).toEqual(["Llama-1B", "Qwen-0.5B"]);
    const cleanup = (id: string, model: string): ServerCommand => ({
      kind: "cleanup_storage",
      command_id: id,
      test_id: id,
      type: "cleanup_storage",
      payload: { model_path: model, engine_name: "cleanup", suite_name: "quick" },
    });
    t.runner.submit(cleanup("k1", join(t.share, "Llama-1B")));
    await t.runner.whenIdle();
    expect(await t.resolver.staged()).toEqual(["Qwen-0.5B"]);
    t.runner.submit(cleanup("k2", "__cleanup__"));
    await t.runner.whenIdle();
    expect(await t.resolver.staged()).toEqual([]);
    expect(t.reporter.trail().slice(-6)).toEqual([
      "status k1 running",
      "result k1 completed",
      "status k1 completed",
      "status k2 running",
      "result k2 completed",
      "status k2 completed",
    ]);
    expect(t.reporter.lines("k2")).toContain("Removed 1 model(s)");
  });

  it("a failing eviction, or one of a model a running job uses, ends the cleanup job failed", async () => {
    const t = await setup({ maxConcurrent: 2 }, { FAKE_GATE: "/nonexistent/gate" });
    const model = join(t.share, "Qwen-0.5B");
    t.runner.submit(runTest("1", { model_path: model }));
    await until(() => t.reporter.lines("t-1").some((l) => l.startsWith("grandchild ")), "the benchmark to start");
    t.runner.submit({ kind: "cleanup_storage", command_id: "k1", test_id: "k1", type: "cleanup_storage", payload: { model_path: model, engine_name: "cleanup", suite_name: "quick" } });
    t.runner.submit({ kind: "cleanup_storage", command_id: "k2", test_id: "k2", type: "cleanup_storage", payload: { model_path: "__cleanup__", engine_name: "cleanup", suite_name: "quick" } });
    await until(() => t.reporter.statuses("k2").length === 2, "both cleanups to end");
    expect(t.reporter.statuses("k1").at(-1)).toEqual({ status: "failed", error: `storage cleanup refused: ${model} is in use by a job` });
    expect(t.reporter.statuses("k2").at(-1)).toEqual({ status: "failed", error: "storage cleanup refused: a benchmark is running" });
    t.runner.cancel("c-1");
    await t.runner.whenIdle();
    t.resolver.evict = () => Promise.reject(new Error("EBUSY: resource busy"));
    t.runner.submit({ kind: "cleanup_storage", command_id: "k3", test_id: "k3", type: "cleanup_storage", payload: { model_path: model, engine_name: "cleanup", suite_name: "quick" } });
    await t.runner.whenIdle();
    expect(t.reporter.statuses("k3").at(-1)).toEqual({ status: "failed", error: "storage cleanup failed: EBUSY: resource busy" });
  });
});
