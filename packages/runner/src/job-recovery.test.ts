import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { useTempDir } from "@kitt/testkit";

import { JobRunner } from "./job-runner.js";
import { until } from "./test-processes.js";
import { DirResolver, RecordingReporter, writeFakeKitt } from "./test-runner-fixtures.js";

const tempDir = useTempDir(afterEach, "kitt-runner-recover-");

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

describe("JobRunner: jobs interrupted by a crash", () => {
  it("a finished job leaves nothing in the journal", async () => {
    const t = await setup();
    const { runner } = t.make();
    runner.submit(t.command("1"));
    await runner.whenIdle();
    expect(await readdir(t.journalDir)).toEqual([]);
  });

  it("the next start reports the running and the queued job failed, once, and removes their output dirs", async () => {
    const t = await setup();
    // The "crashed" agent: one job running, one queued; it never gets to report them.
    const crashed = t.make({ FAKE_GATE: "/nonexistent/gate" });
    crashed.runner.submit(t.command("1"));
    crashed.runner.submit(t.command("2"));
    await until(() => crashed.reporter.lines("t1").some((l) => l.startsWith("grandchild ")), "the benchmark to start");
    await until(async () => (await readdir(t.journalDir)).length === 2, "both jobs journaled");
    expect((await readdir(join(t.root, "work", "runs"))).length).toBe(1);

    const restarted = t.make();
    expect(await restarted.runner.recoverInterrupted()).toEqual(["c1", "c2"]);
    expect(restarted.reporter.trail()).toEqual(["result c1 failed", "status t1 failed", "result c2 failed", "status t2 failed"]);
    expect(restarted.reporter.statuses("t1")).toEqual([{ status: "failed", error: "Agent restarted during the job" }]);
    expect(await readdir(t.journalDir)).toEqual([]);
    await expect(readdir(join(t.root, "work", "runs"))).rejects.toThrow(/ENOENT/);
    expect(await restarted.runner.recoverInterrupted()).toEqual([]);

    await crashed.runner.shutdown();
  });
});
