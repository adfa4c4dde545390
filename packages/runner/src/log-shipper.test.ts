import { readdir } from "node:fs/promises";

import { afterEach, describe, expect, it } from "vitest";

import { MemoryLogger, type ServerError } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";

import { LogShipper } from "./log-shipper.js";
import { countingTransport, serverLines, startServer, type ServerFixture } from "./test-server.js";

const tempDir = useTempDir(afterEach, "kitt-runner-ship-");
const fast = { baseMs: 5, maxMs: 40 };
let fixture: ServerFixture | undefined;
afterEach(async () => {
  await fixture?.close();
  fixture = undefined;
});

describe("LogShipper", () => {
  it("delivers 20,000 lines in order, one request in flight, batched", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    fixture.server.delayAll(5);
    const transport = countingTransport(fixture.client);
    const shipper = new LogShipper({ testId, transport, backoff: fast, maxBatchBytes: 16 * 1024 });
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i + 1}`);
    for (const line of lines) shipper.push(line);
    await shipper.close();
    expect(serverLines(fixture.server, testId)).toEqual(lines);
    expect(transport.maxInFlight).toBe(1);
    expect(transport.requests).toBeLessThan(200);
    expect(shipper.delivered).toBe(20_000);
  });

  it("keeps a batch under maxBatchBytes (but always sends at least one line)", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    fixture.server.delayAll(5);
    const shipper = new LogShipper({ testId, transport: fixture.client, maxBatchBytes: 100 });
    shipper.push("x".repeat(300));
    for (let i = 0; i < 30; i++) shipper.push(`short ${i}`);
    await shipper.close();
    const rows = fixture.server.logLines(testId);
    expect(rows[0]).toBe("x".repeat(300));
    expect(rows.slice(1).every((r) => Buffer.byteLength(r) <= 100)).toBe(true);
    expect(serverLines(fixture.server, testId)).toHaveLength(31);
  });

  it("rides out a server outage: every line arrives once, in order", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    const shipper = new LogShipper({ testId, transport: fixture.client, backoff: fast });
    shipper.push("before");
    expect(await shipper.drained(5000)).toBe(true);
    await fixture.server.down();
    for (let i = 0; i < 100; i++) shipper.push(`during ${i}`);
    await new Promise((r) => setTimeout(r, 50));
    expect(shipper.pending).toBeGreaterThan(0);
    await fixture.server.up();
    shipper.push("after");
    await shipper.close();
    expect(serverLines(fixture.server, testId)).toEqual(["before", ...Array.from({ length: 100 }, (_, i) => `during ${i}`), "after"]);
  });

  it("past the spool cap drops lines and says how many, in their place", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    await fixture.server.down();
    const shipper = new LogShipper({ testId, transport: fixture.client, backoff: fast, maxPendingBytes: 200 });
    for (let i = 0; i < 50; i++) shipper.push(`l${String(i).padStart(3, "0")}`);
    const dropped = shipper.dropped;
    expect(dropped).toBeGreaterThan(0);
    await fixture.server.up();
    expect(await shipper.drained(5000)).toBe(true);
    shipper.push("tail");
    await shipper.close();
    const got = serverLines(fixture.server, testId);
    const kept = 50 - dropped;
    expect(got.slice(0, kept)).toEqual(Array.from({ length: kept }, (_, i) => `l${String(i).padStart(3, "0")}`));
    expect(got.slice(kept)).toEqual([`[kitt-agent: ${dropped} log line(s) dropped here: the agent's log spool was full]`, "tail"]);
  });

  it("gives up on 401/403 (server with an admin token) without looping", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    fixture.server.setAdminToken("admin-secret-token");
    const refusals: unknown[] = [];
    const transport = countingTransport(fixture.client);
    const shipper = new LogShipper({ testId, transport, backoff: fast, onGiveUp: (_id, err) => refusals.push(err) });
    for (let i = 0; i < 10; i++) shipper.push(`l${i}`);
    expect(await shipper.drained(5000)).toBe(true);
    shipper.push("more");
    await shipper.close();
    expect(refusals).toHaveLength(1);
    expect((refusals[0] as ServerError).status).toBe(403);
    expect(transport.requests).toBe(1);
    expect(fixture.server.logLines(testId)).toEqual([]);
  });

  it("spools to disk: a stopped agent's lines are resumed from the delivered position, none twice", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    const spoolDir = await tempDir();
    const logger = new MemoryLogger();
    const first = new LogShipper({ testId, transport: fixture.client, spoolDir, backoff: fast, logger });
    for (let i = 0; i < 5; i++) first.push(`a${i}`);
    expect(await first.drained(5000)).toBe(true);
    await fixture.server.down();
    for (let i = 0; i < 5; i++) first.push(`b${i}`);
    await first.stop();
    expect((await readdir(spoolDir)).sort()).toEqual([`${testId}.log`, `${testId}.pos`]);

    const resume = await LogShipper.readSpool(spoolDir, testId);
    expect(resume.lines).toEqual(["b0", "b1", "b2", "b3", "b4"]);
    await fixture.server.up();
    const second = new LogShipper({ testId, transport: fixture.client, spoolDir, backoff: fast }, resume);
    await second.close();
    expect(serverLines(fixture.server, testId)).toEqual(["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3", "b4"]);
    expect(await readdir(spoolDir)).toEqual([]);
  });
});
