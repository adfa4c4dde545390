/**
 * The outbox and the reporter on a full disk: a real tmpfs filled to the
 * brim gives the kernel's own ENOSPC (mounting needs root: skipped where the
 * machine cannot mount one). Nothing accepted may be lost: what the disk
 * refuses waits in memory, goes to the server directly, and reaches the disk
 * once it has room again.
 */
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";

import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";

import { MemoryLogger } from "@kitt/protocol";
import { canMountSmallDisk, mountSmallDisk, useTempDir, type SmallDisk } from "@kitt/testkit";

import { JobRunner } from "./job-runner.js";
import { LogShipper } from "./log-shipper.js";
import { Outbox, type OutboxOptions } from "./outbox.js";
import { ServerReporter } from "./server-reporter.js";
import { stateDiskProblem } from "./state-files.js";
import { DirResolver, shareWithFakeKitt } from "./test-runner-fixtures.js";
import { serverLines, startServer, type ServerFixture } from "./test-server.js";

const canMount = await canMountSmallDisk();
const tempDir = useTempDir(afterEach, "kitt-runner-disk-");
const fast = { baseMs: 5, maxMs: 40 };
let disk: SmallDisk | undefined;
let fixture: ServerFixture | undefined;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  if (canMount) disk = await mountSmallDisk();
});
afterAll(async () => {
  await disk?.unmount();
});
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await fixture?.close();
  fixture = undefined;
  if (disk !== undefined) {
    await disk.free();
    for (const name of await readdir(disk.path)) await rm(join(disk.path, name), { recursive: true, force: true });
  }
});

async function openOutbox(dir: string, f: ServerFixture, extra: Partial<OutboxOptions> = {}): Promise<Outbox> {
  const outbox = await Outbox.open({ dir, transport: f.client, agentId: () => f.agentId, backoff: fast, ...extra });
  closers.push(() => outbox.stop());
  return outbox;
}

const report = (commandId: string) => ({ command_id: commandId, status: "completed" as const, container_id: "", error: "", result_data: { tps: 1 } });
const entryFiles = async (dir: string) => (await readdir(dir)).filter((n) => n !== "rejected").sort();

describe.skipIf(!canMount)("on a full disk (a real 256 KiB tmpfs; skipped where mount -t tmpfs is not allowed)", () => {
  it("what the disk refuses is delivered directly, in order, and shown in state()", async () => {
    const dir = join(disk!.path, "outbox");
    fixture = await startServer();
    const testId = fixture.newTest();
    const logger = new MemoryLogger();
    const outbox = await openOutbox(dir, fixture, { logger, diskRetryMs: 60_000 });
    await disk!.fill();
    await fixture.server.down();
    outbox.start();
    await outbox.add({ kind: "status", testId, update: { status: "running" } });
    await outbox.add({ kind: "result", testId, report: report("c1") });
    await outbox.add({ kind: "status", testId, update: { status: "completed" } });
    const state = outbox.state();
    expect(state).toMatchObject({ pending: 3, in_memory: 3 });
    expect(state.disk_error).toMatch(/ENOSPC/);
    // Nothing half-written is left behind on the full disk.
    expect(await entryFiles(dir)).toEqual([]);
    expect(logger.records.filter((e) => e.level === "error" && e.message.includes("ENOSPC"))).toHaveLength(1);

    await fixture.server.up();
    expect(await outbox.flush(5000)).toBe(true);
    expect(fixture.server.statuses(testId)).toEqual(["running", "completed"]);
    expect(fixture.server.results.map((r) => r.body.command_id)).toEqual(["c1"]);
    expect(outbox.state()).toMatchObject({ pending: 0, in_memory: 0 });
  });

  it("once space returns they are written (oldest first, on the timer or before the next message) and survive a restart", async () => {
    const dir = join(disk!.path, "outbox");
    fixture = await startServer();
    const testId = fixture.newTest();
    const first = await openOutbox(dir, fixture, { diskRetryMs: 30 });
    await disk!.fill();
    await fixture.server.down();
    first.start();
    await first.add({ kind: "status", testId, update: { status: "running" } });
    await first.add({ kind: "result", testId, report: report("c1") });
    expect(first.state().in_memory).toBe(2);

    await disk!.free();
    await vi.waitFor(() => expect(first.state()).toEqual({ pending: 2, in_memory: 0, disk_error: null }), { timeout: 5000 });
    await first.add({ kind: "status", testId, update: { status: "failed", error: "Exit 3" } });
    expect(await entryFiles(dir)).toEqual(["000000000001.json", "000000000002.json", "000000000003.json"]);
    await first.stop();

    const second = await openOutbox(dir, fixture);
    expect(second.pending).toBe(3);
    second.start();
    await fixture.server.up();
    expect(await second.flush(5000)).toBe(true);
    expect(fixture.server.statusUpdates(testId)).toEqual([
      { status: "running", error: null },
      { status: "failed", error: "Exit 3" },
    ]);
    expect(fixture.server.results.map((r) => r.body.command_id)).toEqual(["c1"]);
  });

  it("a message added after space returns writes the older ones first, so the disk holds them in order", async () => {
    const dir = join(disk!.path, "outbox");
    fixture = await startServer();
    const testId = fixture.newTest();
    const outbox = await openOutbox(dir, fixture, { diskRetryMs: 60_000 });
    await disk!.fill();
    await fixture.server.down();
    await outbox.add({ kind: "status", testId, update: { status: "running" } });
    await disk!.free();
    await outbox.add({ kind: "status", testId, update: { status: "completed" } });
    expect(outbox.state()).toEqual({ pending: 2, in_memory: 0, disk_error: null });
    const files = await entryFiles(dir);
    expect(files).toEqual(["000000000001.json", "000000000002.json"]);
    expect(JSON.parse(await readFile(join(dir, "000000000001.json"), "utf8"))).toMatchObject({ update: { status: "running" } });
  });

  it("a job run while the state dir's disk is full: its lines, result and statuses reach the server once space and server are back", async () => {
    fixture = await startServer();
    const f = fixture;
    const root = await tempDir();
    const { share, binDir, modelPath } = await shareWithFakeKitt(root);
    const reporter = await ServerReporter.open({ stateDir: disk!.path, transport: f.client, agentId: () => f.agentId, backoff: fast, diskRetryMs: 30 });
    closers.push(() => reporter.stop());
    const runner = new JobRunner({ resolver: new DirResolver(share, join(root, "staging")), reporter, workDir: join(root, "work"), env: { PATH: `${binDir}:/usr/bin:/bin` } });
    await disk!.fill();
    await f.server.down();
    const testId = f.newTest();
    runner.submit({
      kind: "run_test",
      command_id: `cmd${testId}`,
      test_id: testId,
      type: "run_test",
      payload: { model_path: modelPath, engine_name: "vllm", suite_name: "quick" },
    });
    await runner.whenIdle();
    const held = reporter.outboxState();
    expect(held).toMatchObject({ pending: 3, in_memory: 3 });
    expect(held.disk_error).toMatch(/ENOSPC/);

    await disk!.free();
    await vi.waitFor(() => expect(reporter.outboxState()).toEqual({ pending: 3, in_memory: 0, disk_error: null }), { timeout: 5000 });
    await f.server.up();
    expect(await reporter.flush(5000)).toBe(true);
    expect(f.server.statuses(testId)).toEqual(["running", "completed"]);
    expect(f.server.results.map((r) => r.body.status)).toEqual(["completed"]);
    expect(serverLines(f.server, testId)).toEqual(runner.job(`cmd${testId}`)?.logs.buffered().map((e) => e.line));
  });

  it("a log spool append the disk refuses is cut back to whole records and retried: the spool stays a gap-free prefix, restart delivers each line once", async () => {
    const dir = join(disk!.path, "log-spool");
    await mkdir(dir);
    fixture = await startServer();
    const testId = fixture.newTest();
    await fixture.server.down();
    const errors: (string | undefined)[] = [];
    const first = new LogShipper({
      testId,
      transport: fixture.client,
      spoolDir: dir,
      backoff: fast,
      spoolRetryMs: 30,
      onSpoolDiskError: (_id, error) => errors.push(error),
    });
    closers.push(() => first.stop());
    const lines = Array.from({ length: 300 }, (_, i) => `line ${i + 1} ${"x".repeat(40)}`);
    for (const line of lines.slice(0, 100)) first.push(line);
    await vi.waitFor(async () => expect((await readFile(join(dir, `${testId}.log`), "utf8")).split("\n")).toHaveLength(101));
    // Full now: the next appends land partly in the spool file's last page, then hit ENOSPC.
    await disk!.fill();
    for (const line of lines.slice(100)) first.push(line);
    await vi.waitFor(() => expect(errors.at(-1)).toMatch(/ENOSPC/));
    // Between two retries (every 30 ms, each undone as it fails) the file holds whole records only.
    const cut = await vi.waitFor(async () => {
      const records = (await readFile(join(dir, `${testId}.log`), "utf8")).split("\n");
      expect(records.pop()).toBe("");
      return records;
    });
    expect(cut.map((r) => JSON.parse(r) as string)).toEqual(lines.slice(0, cut.length));

    await disk!.free();
    await vi.waitFor(async () => expect((await readFile(join(dir, `${testId}.log`), "utf8")).split("\n")).toHaveLength(301), { timeout: 5000 });
    expect(errors.at(-1)).toBeUndefined();
    await first.stop();

    const second = new LogShipper({ testId, transport: fixture.client, spoolDir: dir, backoff: fast }, await LogShipper.readSpool(dir, testId));
    closers.push(() => second.stop());
    await fixture.server.up();
    await second.close();
    expect(serverLines(fixture.server, testId)).toEqual(lines);
  });

  it("stateDiskProblem() names the state dir and the figures when its disk is under the threshold", async () => {
    expect(await stateDiskProblem(disk!.path)).toMatch(new RegExp(`^the disk of the agent's state dir ${disk!.path} is full: 0\\.\\d MiB free, the agent needs at least 64\\.0 MiB`));
    expect(await stateDiskProblem(disk!.path, 64 * 1024)).toBeUndefined();
    await disk!.fill();
    expect(await stateDiskProblem(disk!.path, 4096)).toMatch(/0\.0 MiB free/);
    expect(await stateDiskProblem(await tempDir(), 1)).toBeUndefined();
  });
});
