/**
 * The reporter's per-job streams and the outbox's holds, against the fake
 * KITT server over real HTTP: two jobs of one test keep their own ordered
 * streams, a terminal status of one never cuts the other's, a held outcome
 * waits, and stop() ends a result's wait for its log lines at once.
 */
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { useTempDir } from "@kitt/testkit";

import { ServerReporter } from "./server-reporter.js";
import { serverLines, startServer, type ServerFixture } from "./test-server.js";
import { until } from "./test-processes.js";

const tempDir = useTempDir(afterEach, "kitt-runner-streams-");
const fast = { baseMs: 5, maxMs: 40 };
let fixture: ServerFixture | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

async function open(f: ServerFixture, extra: Partial<Parameters<typeof ServerReporter.open>[0]> = {}) {
  return ServerReporter.open({ stateDir: join(await tempDir(), "state"), transport: f.client, agentId: () => f.agentId, backoff: fast, ...extra });
}

describe("ServerReporter: job streams and holds", () => {
  it("two jobs of one test keep their own ordered streams; one's final status does not cut the other's", async () => {
    fixture = await startServer();
    const f = fixture;
    const testId = f.newTest();
    const reporter = await open(f);
    const N = 2000;
    for (let i = 1; i <= N; i++) {
      reporter.log(testId, `a ${i}`, "job-a");
      reporter.log(testId, `b ${i}`, "job-b");
      // Job b ends halfway; job a goes on writing.
      if (i === N / 2) await reporter.status(testId, { status: "failed", error: "b refused" }, { job: "job-b" });
    }
    await reporter.status(testId, { status: "completed" }, { job: "job-a" });
    await until(() => serverLines(f.server, testId).filter((l) => l.startsWith("a ")).length === N, "every line of job a");
    const lines = serverLines(f.server, testId);
    expect(lines.filter((l) => l.startsWith("a "))).toEqual(Array.from({ length: N }, (_, i) => `a ${i + 1}`));
    // b's lines up to its end arrive in order; after its final status its stream is closed.
    const b = lines.filter((l) => l.startsWith("b "));
    expect(b).toEqual(Array.from({ length: b.length }, (_, i) => `b ${i + 1}`));
    expect(b.length).toBeGreaterThanOrEqual(N / 2);
    await reporter.stop();
  });

  it("a held message waits at the head of the line until released; hasPending sees it", async () => {
    fixture = await startServer();
    const f = fixture;
    const testId = f.newTest();
    const reporter = await open(f);
    reporter.hold(["c1:status"]);
    await reporter.status(testId, { status: "running" }, { job: "c1", key: "c1:status" });
    await reporter.status(testId, { status: "completed" }, { job: "c1", key: "c1:done" });
    await new Promise((r) => setTimeout(r, 200));
    expect(f.server.statuses(testId)).toEqual([]);
    expect(reporter.hasPending("c1:status")).toBe(true);
    reporter.release(["c1:status"]);
    await until(() => f.server.statuses(testId).length === 2, "both statuses after the release");
    expect(f.server.statuses(testId)).toEqual(["running", "completed"]);
    expect(reporter.hasPending("c1:status")).toBe(false);
    await reporter.stop();
  });

  it("deferDelivery: nothing goes before startDelivery()", async () => {
    fixture = await startServer();
    const f = fixture;
    const testId = f.newTest();
    const reporter = await open(f, { deferDelivery: true });
    await reporter.status(testId, { status: "running" });
    await new Promise((r) => setTimeout(r, 200));
    expect(f.server.statuses(testId)).toEqual([]);
    reporter.startDelivery();
    await until(() => f.server.statuses(testId).length === 1, "the status after startDelivery");
    await reporter.stop();
  });

  it("what a previous run delivered just before it died is not sent again after the restart", async () => {
    fixture = await startServer();
    const f = fixture;
    const testId = f.newTest();
    const commandId = f.server.getTest(testId)?.command_id as string;
    const stateDir = join(await tempDir(), "state");
    const first = await ServerReporter.open({ stateDir, transport: f.client, agentId: () => f.agentId, backoff: fast, deferDelivery: true });
    const report = { command_id: commandId, status: "completed" as const, container_id: "", error: "", result_data: { tps: 1 } };
    await first.result(testId, report, { job: commandId, key: `${commandId}:result` });
    await first.status(testId, { status: "completed" }, { job: commandId, key: `${commandId}:status` });
    await first.stop();
    // The dead run had delivered both: the server holds them, the outbox files were not yet removed.
    await f.client.reportResult(f.agentId, report);
    await f.client.postStatus(testId, { status: "completed" });

    const second = await ServerReporter.open({ stateDir, transport: f.client, agentId: () => f.agentId, backoff: fast });
    await until(() => second.outbox.pending === 0, "the resumed entries settled");
    expect(f.server.results.filter((r) => r.body.command_id === commandId)).toHaveLength(1);
    expect(f.server.statuses(testId)).toEqual(["completed"]);
    await second.stop();
  });

  it("stop() ends a final status's wait for log lines the server keeps refusing: no 10-minute hang", async () => {
    fixture = await startServer();
    const f = fixture;
    const testId = f.newTest();
    f.server.failNext(1_000_000, 503, { error: "logs down" }, { path: /\/logs$/ });
    const reporter = await open(f);
    reporter.log(testId, "a line the server will not take", "c1");
    await reporter.status(testId, { status: "completed" }, { job: "c1" });
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await reporter.stop();
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(f.server.statuses(testId)).toEqual([]);
    // Not lost: it waits on disk for the next start.
    expect(reporter.outbox.pending).toBe(1);
  });
});
