import { execFile } from "node:child_process";
import { link, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

import { afterEach, describe, expect, it } from "vitest";

import { MemoryLogger, type ServerCommand } from "@kitt/protocol";
import { type FakeBenchmarkOptions, useTempDir, writeFakeBenchmark } from "@kitt/testkit";

import { JobRunner } from "./job-runner.js";
import { METRICS_LIMITS, readMetricsFile } from "./metrics-file.js";
import { DirResolver, RecordingReporter } from "./test-runner-fixtures.js";

const tempDir = useTempDir(afterEach, "kitt-runner-metrics-");
const run = promisify(execFile);

const SECRET = "hunter2-TOP-SECRET-token";
const DEEP = 200_000;
const deepText = `${"[".repeat(DEEP)}${"]".repeat(DEEP)}`;
const oversized = `{"blob":"${"x".repeat(METRICS_LIMITS.maxBytes)}"}`;

/** A file the benchmark should never be able to send: JSON, so a reader that follows links would send it as result_data. */
async function secretFile(root: string): Promise<string> {
  const path = join(root, "secret.json");
  await writeFile(path, JSON.stringify({ token: SECRET }));
  return path;
}

describe("readMetricsFile", () => {
  async function outDir(): Promise<{ root: string; out: string }> {
    const root = await tempDir();
    const out = join(root, "out");
    await mkdir(out);
    return { root, out };
  }

  it("reads a regular file holding a JSON object", async () => {
    const { out } = await outDir();
    await writeFile(join(out, "metrics.json"), '{"throughput_tps": 42.5, "nested": {"p50": [1, 2]}}');
    expect(await readMetricsFile(out)).toEqual({ ok: true, data: { throughput_tps: 42.5, nested: { p50: [1, 2] } } });
  });

  it("a FIFO is refused at once, never opened for a blocking read", async () => {
    const { out } = await outDir();
    await run("mkfifo", [join(out, "metrics.json")], { timeout: 5_000 });
    expect(await readMetricsFile(out)).toEqual({ ok: false, reason: "metrics.json is a FIFO, not a regular file: not read" });
  });

  it("a symbolic or hard link to another file is not followed, and nothing of that file is quoted", async () => {
    const { root, out } = await outDir();
    const secret = await secretFile(root);
    await symlink(secret, join(out, "metrics.json"));
    expect(await readMetricsFile(out)).toEqual({ ok: false, reason: "metrics.json is a symbolic link, not a regular file: not read" });
    const other = join(root, "out2");
    await mkdir(other);
    await link(secret, join(other, "metrics.json"));
    expect(await readMetricsFile(other)).toEqual({ ok: false, reason: "metrics.json has 2 hard links (another file's content): not read" });
  });

  it.each([
    ["200,000 levels deep", deepText, "metrics.json nests deeper than 64 levels (at character 64)"],
    ["over the size limit", oversized, `metrics.json is ${oversized.length} bytes (limit ${METRICS_LIMITS.maxBytes})`],
    ["an array at the top", "[1,2,3]", "metrics.json is an array, not a JSON object"],
    ["a string at the top", JSON.stringify(SECRET), "metrics.json is a string, not a JSON object"],
    ["null", "null", "metrics.json is null, not a JSON object"],
    ["not JSON (its text is not quoted)", `{"token": ${SECRET}}`, "metrics.json is not valid JSON"],
    ["not JSON, with a position", `{"a":1,}`, "metrics.json is not valid JSON (error at position 7)"],
    ["empty", "", "metrics.json is not valid JSON"],
  ])("%s: refused with one line", async (_name, text, reason) => {
    const { out } = await outDir();
    await writeFile(join(out, "metrics.json"), text);
    expect(await readMetricsFile(out)).toEqual({ ok: false, reason });
  });

  it("bytes that are not UTF-8, a directory, and no file at all", async () => {
    const { out } = await outDir();
    await writeFile(join(out, "metrics.json"), Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    expect(await readMetricsFile(out)).toEqual({ ok: false, reason: "metrics.json is not valid UTF-8" });
    const dir = join(out, "d");
    await mkdir(join(dir, "metrics.json"), { recursive: true });
    expect(await readMetricsFile(dir)).toEqual({ ok: false, reason: "metrics.json is a directory, not a regular file: not read" });
    expect(await readMetricsFile(join(out, "none"))).toEqual({ ok: false, reason: "The benchmark wrote no metrics.json" });
  });
});

describe("JobRunner with a hostile benchmark's metrics.json", () => {
  function command(id: string, modelPath: string): ServerCommand {
    return {
      kind: "run_test",
      command_id: `c-${id}`,
      test_id: `t-${id}`,
      type: "run_test",
      payload: { model_path: modelPath, engine_name: "vllm", suite_name: "quick" },
    };
  }

  async function runJob(metricsFile: (root: string) => Promise<FakeBenchmarkOptions["metricsFile"]>) {
    const root = await tempDir();
    const share = join(root, "share");
    await mkdir(join(share, "Qwen-0.5B"), { recursive: true });
    await writeFile(join(share, "Qwen-0.5B", "config.json"), "{}");
    const bench = await writeFakeBenchmark(join(root, "bin"), { lines: 2, metricsFile: await metricsFile(root) });
    const reporter = new RecordingReporter();
    const logger = new MemoryLogger();
    const runner = new JobRunner({
      resolver: new DirResolver(share, join(root, "staging")),
      reporter,
      workDir: join(root, "work"),
      benchmarkCommand: bench,
      env: { PATH: "/usr/bin:/bin" },
      killGraceMs: 2_000,
      logger,
    });
    expect(runner.submit(command("1", join(share, "Qwen-0.5B"))).accepted).toBe(true);
    await runner.whenIdle();
    await runner.shutdown("test over");
    // Everything the job said, to the server and to the agent's own log.
    const said = JSON.stringify(reporter.events) + JSON.stringify(logger.records);
    return { reporter, said };
  }

  it.each([
    ["a FIFO", async () => ({ fifo: true as const }), "metrics.json is a FIFO, not a regular file: not read"],
    ["a symbolic link to a secret file", async (root: string) => ({ symlinkTo: await secretFile(root) }), "metrics.json is a symbolic link, not a regular file: not read"],
    ["a hard link to a secret file", async (root: string) => ({ hardLinkTo: await secretFile(root) }), "metrics.json has 2 hard links (another file's content): not read"],
    ["200,000 levels deep", async () => ({ text: deepText }), "metrics.json nests deeper than 64 levels (at character 64)"],
    ["over 8 MiB", async () => ({ text: oversized }), `metrics.json is ${oversized.length} bytes (limit ${METRICS_LIMITS.maxBytes})`],
    ["no object at the top", async () => ({ text: JSON.stringify([SECRET]) }), "metrics.json is an array, not a JSON object"],
    ["broken JSON around a secret", async () => ({ text: `{"a": ${SECRET}` }), "metrics.json is not valid JSON"],
  ])("%s: the job finishes completed without result_data, one log line says why, nothing secret is sent", async (_name, file, reason) => {
    const { reporter, said } = await runJob(file);
    expect(reporter.trail()).toEqual(["status t-1 running", "result c-1 completed", "status t-1 completed"]);
    expect(reporter.results("c-1")).toEqual([{ command_id: "c-1", status: "completed", container_id: "", error: "" }]);
    expect(reporter.lines("t-1").filter((l) => l.includes("result sent without result_data"))).toEqual([`${reason}: result sent without result_data`]);
    expect(said).not.toContain(SECRET);
    expect(said).not.toContain("[[[[");
  }, 20_000);
});
