import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { MemoryLogger } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";

import { Outbox, type OutboxOptions } from "./outbox.js";
import { startServer, type ServerFixture } from "./test-server.js";

const tempDir = useTempDir(afterEach, "kitt-runner-outbox-");
const fast = { baseMs: 5, maxMs: 40 };
let fixture: ServerFixture | undefined;
const opened: Outbox[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((o) => o.stop()));
  await fixture?.close();
  fixture = undefined;
});

async function openOutbox(dir: string, f: ServerFixture, extra: Partial<OutboxOptions> = {}): Promise<Outbox> {
  const outbox = await Outbox.open({ dir, transport: f.client, agentId: () => f.agentId, backoff: fast, ...extra });
  opened.push(outbox);
  return outbox;
}

const report = (commandId: string) => ({ command_id: commandId, status: "completed" as const, container_id: "", error: "", result_data: { tps: 1 } });

describe("Outbox", () => {
  it("writes each message to disk before the first attempt and deletes it once acknowledged", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    const dir = await tempDir();
    await fixture.server.down();
    const outbox = await openOutbox(dir, fixture);
    outbox.start();
    await outbox.add({ kind: "status", testId, update: { status: "running" } });
    const files = (await readdir(dir)).filter((n) => n.endsWith(".json"));
    expect(files).toEqual(["000000000001.json"]);
    expect(JSON.parse(await readFile(join(dir, "000000000001.json"), "utf8"))).toEqual({ kind: "status", testId, update: { status: "running" } });
    await fixture.server.up();
    expect(await outbox.flush(5000)).toBe(true);
    expect(fixture.server.statuses(testId)).toEqual(["running"]);
    expect((await readdir(dir)).filter((n) => n.endsWith(".json"))).toEqual([]);
  });

  it("survives a restart: what was not delivered goes out, in order, exactly once", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    const dir = await tempDir();
    await fixture.server.down();
    const first = await openOutbox(dir, fixture);
    first.start();
    await first.add({ kind: "status", testId, update: { status: "running" } });
    await first.add({ kind: "result", testId, report: report("c1") });
    await first.add({ kind: "status", testId, update: { status: "failed", error: "Exit 3" } });
    await first.stop();
    // A write cut short by a crash leaves a temp file: it is not an entry.
    await writeFile(join(dir, ".tmp-000000000004.json-dead"), "{");

    const second = await openOutbox(dir, fixture);
    expect(second.pending).toBe(3);
    second.start();
    await second.add({ kind: "status", testId, update: { status: "completed" } });
    await fixture.server.up();
    expect(await second.flush(5000)).toBe(true);
    expect(fixture.server.statusUpdates(testId)).toEqual([
      { status: "running", error: null },
      { status: "failed", error: "Exit 3" },
      { status: "completed", error: null },
    ]);
    expect(fixture.server.results.map((r) => r.body.command_id)).toEqual(["c1"]);
    expect((await readdir(dir)).sort()).toEqual(["rejected"]);
  });

  it("401/403 is logged once, clearly; the messages are kept in rejected/ and results still flow", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    fixture.server.setAdminToken("admin-secret-token");
    const dir = await tempDir();
    const logger = new MemoryLogger();
    const outbox = await openOutbox(dir, fixture, { logger });
    outbox.start();
    await outbox.add({ kind: "status", testId, update: { status: "running" } });
    await outbox.add({ kind: "status", testId, update: { status: "completed" } });
    await outbox.add({ kind: "result", testId, report: report("c1") });
    expect(await outbox.flush(5000)).toBe(true);
    expect(fixture.server.results).toHaveLength(1);
    expect(await readdir(join(dir, "rejected"))).toEqual(["000000000001.json", "000000000002.json"]);
    const errors = logger.records.filter((r) => r.level === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toMatch(/refused the agent's token .*HTTP 403.*admin token/);
    // Exactly one attempt each: no hot loop.
    expect(fixture.server.requests.filter((r) => r.path.endsWith("/status"))).toHaveLength(2);
  });

  it("retries a 5xx with backoff and keeps the order behind it", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    fixture.server.failNext(3, 503);
    const outbox = await openOutbox(await tempDir(), fixture);
    outbox.start();
    await outbox.add({ kind: "status", testId, update: { status: "running" } });
    await outbox.add({ kind: "status", testId, update: { status: "completed" } });
    expect(await outbox.flush(5000)).toBe(true);
    expect(fixture.server.statuses(testId)).toEqual(["running", "completed"]);
  });

  it("holds results until the agent has an id", async () => {
    fixture = await startServer();
    const registered: { agentId?: string } = {};
    const outbox = await openOutbox(await tempDir(), fixture, { agentId: () => registered.agentId });
    outbox.start();
    await outbox.add({ kind: "result", testId: "t1", report: report("c9") });
    expect(await outbox.flush(100)).toBe(false);
    registered.agentId = fixture.agentId;
    expect(await outbox.flush(5000)).toBe(true);
    expect(fixture.server.results.map((r) => r.agentId)).toEqual([fixture.agentId]);
  });

  it("moves an unreadable entry to rejected/ on open", async () => {
    fixture = await startServer();
    const dir = await tempDir();
    await writeFile(join(dir, "000000000007.json"), "not json");
    const logger = new MemoryLogger();
    const outbox = await openOutbox(dir, fixture, { logger });
    expect(outbox.pending).toBe(0);
    expect(await readdir(join(dir, "rejected"))).toEqual(["000000000007.json"]);
    expect(logger.text()).toContain("outbox entry 000000000007.json is unreadable");
    // New entries continue after the highest seq seen.
    await outbox.add({ kind: "status", testId: "t1", update: { status: "running" } });
    expect(outbox.list()[0]?.seq).toBe(8);
  });

  it("retryNow() ends a long backoff wait (for a flush at shutdown)", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    fixture.server.failNext(1, 503);
    const outbox = await openOutbox(await tempDir(), fixture, { backoff: { baseMs: 600_000, maxMs: 600_000 } });
    outbox.start();
    await outbox.add({ kind: "status", testId, update: { status: "running" } });
    await fixture.server.waitFor(() => fixture?.server.requests.length === 1);
    expect(await outbox.flush(50)).toBe(false);
    outbox.retryNow();
    expect(await outbox.flush(5000)).toBe(true);
    expect(fixture.server.statuses(testId)).toEqual(["running"]);
  });
});
