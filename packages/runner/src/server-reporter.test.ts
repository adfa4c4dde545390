import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { MemoryLogger } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";

import { JobRunner } from "./job-runner.js";
import { ServerReporter } from "./server-reporter.js";
import { DirResolver, writeFakeKitt } from "./test-runner-fixtures.js";
import { writeScript } from "./test-processes.js";
import { serverLines, startServer, type ServerFixture } from "./test-server.js";

const tempDir = useTempDir(afterEach, "kitt-runner-e2e-");
const fast = { baseMs: 5, maxMs: 40 };
let fixture: ServerFixture | undefined;
const reporters: ServerReporter[] = [];
afterEach(async () => {
  await Promise.all(reporters.splice(0).map((r) => r.stop()));
  await fixture?.close();
  fixture = undefined;
});

async function setup(f: ServerFixture, env: Record<string, string> = {}) {
  const root = await tempDir();
  const share = join(root, "share");
  await mkdir(join(share, "Qwen-0.5B"), { recursive: true });
  await writeFile(join(share, "Qwen-0.5B", "config.json"), "{}");
  const binDir = join(root, "bin");
  await writeFakeKitt(binDir);
  const logger = new MemoryLogger();
  const reporter = await ServerReporter.open({ stateDir: join(root, "state"), transport: f.client, agentId: () => f.agentId, backoff: fast, logger });
  reporters.push(reporter);
  const runner = new JobRunner({
    resolver: new DirResolver(share, join(root, "staging")),
    reporter,
    workDir: join(root, "work"),
    env: { PATH: `${binDir}:/usr/bin:/bin`, ...env },
    logger,
  });
  return { root, share, binDir, reporter, runner, logger };
}

function command(f: ServerFixture, testId: string, modelPath: string) {
  const row = f.server.getTest(testId);
  return {
    kind: "run_test" as const,
    command_id: `cmd${testId}`,
    test_id: testId,
    type: "run_test" as const,
    payload: { model_path: modelPath, engine_name: row?.engine_name ?? "vllm", suite_name: "quick" },
  };
}

describe("JobRunner + ServerReporter against the fake KITT server", () => {
  it("a job's lines, result and statuses reach the server in order; the result comes after the lines", async () => {
    fixture = await startServer();
    const t = await setup(fixture);
    const testId = fixture.newTest();
    t.runner.submit(command(fixture, testId, join(t.share, "Qwen-0.5B")));
    await t.runner.whenIdle();
    expect(await t.reporter.flush(5000)).toBe(true);
    const f = fixture;
    expect(f.server.statuses(testId)).toEqual(["running", "completed"]);
    expect(f.server.results.map((r) => r.body)).toEqual([
      { command_id: `cmd${testId}`, status: "completed", container_id: "", error: "", result_data: { throughput_tps: 42.5, suite: "quick" } },
    ]);
    const lines = serverLines(f.server, testId);
    expect(lines).toEqual(t.runner.job(`cmd${testId}`)?.logs.buffered().map((e) => e.line));
    expect(lines.at(-1)).toBe("Job completed");
    // Order on the wire: the last log request before the result, the result before the final status.
    const paths = f.server.requests.map((r) => r.path);
    const lastLog = paths.lastIndexOf(`/api/v1/quicktest/${testId}/logs`);
    const result = paths.indexOf(`/api/v1/agents/${f.agentId}/results`);
    const statusPaths = paths.flatMap((p, i) => (p === `/api/v1/quicktest/${testId}/status` ? [i] : []));
    expect(lastLog).toBeLessThan(result);
    expect(result).toBeLessThan(statusPaths[1] as number);
    expect(await readdir(join(t.root, "state", "log-spool"))).toEqual([]);
  });

  it("server down during the job, then back: every line, the result and exactly one terminal status arrive", async () => {
    fixture = await startServer();
    const t = await setup(fixture);
    const testId = fixture.newTest();
    const bench = await writeScript(t.binDir, "chatty", 'i=0; while [ $i -lt 3000 ]; do echo "step $i"; i=$((i+1)); done\necho "{}" > "$9/metrics.json"');
    const runner = new JobRunner({ resolver: new DirResolver(t.share, join(t.root, "staging")), reporter: t.reporter, workDir: join(t.root, "work"), benchmarkCommand: bench, env: { PATH: "/usr/bin:/bin" } });
    await fixture.server.down();
    runner.submit(command(fixture, testId, join(t.share, "Qwen-0.5B")));
    await runner.whenIdle();
    expect(fixture.server.statuses(testId)).toEqual([]);
    await fixture.server.up();
    expect(await t.reporter.flush(10_000)).toBe(true);
    expect(fixture.server.statuses(testId)).toEqual(["running", "completed"]);
    const lines = serverLines(fixture.server, testId);
    expect(lines.filter((l) => l.startsWith("step "))).toEqual(Array.from({ length: 3000 }, (_, i) => `step ${i}`));
    // Nothing lost or added: the server holds exactly what the job logged (the ring keeps the last 1,000).
    const job = runner.job(`cmd${testId}`);
    expect(lines).toHaveLength(job?.logs.lastSeq ?? -1);
    expect(lines.slice(-1000)).toEqual(job?.logs.buffered().map((e) => e.line));
    expect(lines[0]).toBe(`The benchmark runs on the host: ${bench}`);
    expect(lines[1]).toBe(`Staging model ${join(t.share, "Qwen-0.5B")}`);
    expect(fixture.server.results).toHaveLength(1);
  });

  it("after a crash, a new reporter delivers the spooled lines and the outbox, lines first", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    const stateDir = join(await tempDir(), "state");
    await fixture.server.down();
    const first = await ServerReporter.open({ stateDir, transport: fixture.client, agentId: () => fixture?.agentId, backoff: fast });
    await first.status(testId, { status: "running" });
    for (let i = 0; i < 10; i++) first.log(testId, `l${i}`);
    await first.result(testId, { command_id: "c1", status: "failed", container_id: "", error: "Agent restarted during the job" });
    await first.status(testId, { status: "failed", error: "Agent restarted during the job" });
    await first.stop();

    await fixture.server.up();
    const second = await ServerReporter.open({ stateDir, transport: fixture.client, agentId: () => fixture?.agentId, backoff: fast });
    reporters.push(second);
    expect(await second.flush(5000)).toBe(true);
    await fixture.server.waitFor(() => (fixture?.server.statuses(testId).length ?? 0) === 2);
    expect(fixture.server.statuses(testId)).toEqual(["running", "failed"]);
    expect(serverLines(fixture.server, testId)).toEqual(Array.from({ length: 10 }, (_, i) => `l${i}`));
    const paths = fixture.server.requests.filter((r) => !r.fault).map((r) => r.path);
    expect(paths.lastIndexOf(`/api/v1/quicktest/${testId}/logs`)).toBeLessThan(paths.indexOf(`/api/v1/agents/${fixture.agentId}/results`));
  });

  it("a server that refuses the agent's token on test routes: one clear error, results still delivered, no hot loop", async () => {
    fixture = await startServer();
    fixture.server.setAdminToken("admin-secret-token");
    const t = await setup(fixture);
    const ids = [fixture.newTest(), fixture.newTest()];
    for (const id of ids) t.runner.submit(command(fixture, id, join(t.share, "Qwen-0.5B")));
    await t.runner.whenIdle();
    expect(await t.reporter.flush(5000)).toBe(true);
    expect(fixture.server.results).toHaveLength(2);
    const errors = t.logger.records.filter((r) => r.level === "error");
    expect(errors.map((e) => e.message.split(" (")[0])).toEqual([
      "the server refuses the agent's token for test logs",
      "outbox: the server refused the agent's token for status updates",
    ]);
    // One log request per job (then it gives up), one per status: nothing retried.
    const testRequests = fixture.server.requests.filter((r) => r.path.startsWith("/api/v1/quicktest/"));
    expect(testRequests.filter((r) => r.path.endsWith("/logs"))).toHaveLength(2);
    expect(testRequests.filter((r) => r.path.endsWith("/status"))).toHaveLength(4);
  });
});
