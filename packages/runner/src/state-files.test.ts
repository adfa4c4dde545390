/**
 * Links and FIFOs planted in the state dir (outbox, log spool): never
 * followed, for reading or writing. Each planted link points at a file
 * outside the state dir that must stay exactly as it was.
 */
import { execFile } from "node:child_process";
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

import { afterEach, describe, expect, it, vi } from "vitest";

import { MemoryLogger, UsageError } from "@kitt/protocol";
import { useTempDir } from "@kitt/testkit";

import { LogShipper } from "./log-shipper.js";
import { Outbox } from "./outbox.js";
import { ServerReporter } from "./server-reporter.js";
import { serverLines, startServer, type ServerFixture } from "./test-server.js";

const tempDir = useTempDir(afterEach, "kitt-runner-links-");
const fast = { baseMs: 5, maxMs: 40 };
let fixture: ServerFixture | undefined;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await fixture?.close();
  fixture = undefined;
});

/** A state dir and, beside it, a victim file holding `content`. */
async function layout(content: string) {
  const root = await tempDir();
  const state = join(root, "state");
  await mkdir(state);
  const victim = join(root, "victim.txt");
  await writeFile(victim, content);
  return { root, state, victim };
}

describe("state files are never opened through a planted link", () => {
  it("an outbox/ or outbox/rejected/ that is a link is refused with one line; the directory it points at gets nothing", async () => {
    fixture = await startServer();
    const f = fixture;
    const { root, state } = await layout("");
    const elsewhere = join(root, "elsewhere");
    await mkdir(elsewhere);
    await mkdir(join(state, "outbox"));
    await symlink(elsewhere, join(state, "outbox", "rejected"));
    const open = (dir: string) => Outbox.open({ dir, transport: f.client, agentId: () => f.agentId });
    const refused = await open(join(state, "outbox")).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(UsageError);
    expect((refused as Error).message).toBe(`${join(state, "outbox", "rejected")} is a symbolic link: the agent keeps its state in real directories only (remove the link)`);

    await symlink(elsewhere, join(state, "outbox2"));
    await expect(open(join(state, "outbox2"))).rejects.toThrow(/outbox2 is a symbolic link/);
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it("an outbox entry that is a link (or a FIFO) is not read or sent: it is removed, its target untouched", async () => {
    fixture = await startServer();
    const f = fixture;
    const testId = f.newTest();
    const planted = JSON.stringify({ kind: "status", testId, update: { status: "failed", error: "planted" } });
    const { state, victim } = await layout(planted);
    const dir = join(state, "outbox");
    await mkdir(dir);
    await symlink(victim, join(dir, "000000000001.json"));
    await promisify(execFile)("mkfifo", [join(dir, "000000000002.json")]);
    const logger = new MemoryLogger();
    const outbox = await Outbox.open({ dir, transport: f.client, agentId: () => f.agentId, backoff: fast, logger });
    closers.push(() => outbox.stop());
    expect(outbox.pending).toBe(0);
    expect(await readdir(dir)).toEqual(["rejected"]);
    expect(logger.text()).toContain(`${join(dir, "000000000001.json")} is a symbolic link: not followed; removed`);
    expect(logger.text()).toContain(`${join(dir, "000000000002.json")} is not a regular file; removed`);

    // The sequence goes on after the planted names; a link planted at the next name is replaced, not written through.
    await symlink(victim, join(dir, "000000000003.json"));
    outbox.start();
    await f.server.down();
    await outbox.add({ kind: "status", testId, update: { status: "running" } });
    expect((await lstat(join(dir, "000000000003.json"))).isFile()).toBe(true);
    await f.server.up();
    expect(await outbox.flush(5000)).toBe(true);
    expect(f.server.statusUpdates(testId)).toEqual([{ status: "running", error: null }]);
    expect(await readFile(victim, "utf8")).toBe(planted);
  });

  it("a spool file that is a link or a FIFO is not read back at start (its target's lines are not sent) and goes", async () => {
    fixture = await startServer();
    const f = fixture;
    const testId = f.newTest();
    const other = f.newTest();
    const planted = `${JSON.stringify("a line from somebody else's file")}\n`;
    const { state, victim } = await layout(planted);
    await mkdir(join(state, "log-spool"), { recursive: true });
    await symlink(victim, join(state, "log-spool", `${testId}.log`));
    await promisify(execFile)("mkfifo", [join(state, "log-spool", `${other}.log`)]);
    const logger = new MemoryLogger();
    const reporter = await ServerReporter.open({ stateDir: state, transport: f.client, agentId: () => f.agentId, backoff: fast, logger });
    closers.push(() => reporter.stop());
    expect(await reporter.flush(2000)).toBe(true);
    expect(serverLines(f.server, testId)).toEqual([]);
    expect(await readdir(join(state, "log-spool"))).toEqual([]);
    expect(await readFile(victim, "utf8")).toBe(planted);
    expect(logger.text()).toContain(`is a symbolic link: not followed; removed`);
  });

  it("a job's lines are not appended through a link planted at its spool file: they are delivered, the error is reported, the target stays", async () => {
    fixture = await startServer();
    const testId = fixture.newTest();
    const { state, victim } = await layout("untouched\n");
    const spoolDir = join(state, "log-spool");
    await mkdir(spoolDir);
    await symlink(victim, join(spoolDir, `${testId}.log`));
    const errors: (string | undefined)[] = [];
    const shipper = new LogShipper({
      testId,
      transport: fixture.client,
      spoolDir,
      backoff: fast,
      spoolRetryMs: 20,
      onSpoolDiskError: (_id, error) => errors.push(error),
    });
    closers.push(() => shipper.stop());
    for (let i = 1; i <= 50; i++) shipper.push(`line ${i}`);
    await vi.waitFor(() => expect(errors[0]).toBe(`${join(spoolDir, `${testId}.log`)} is a symbolic link: not followed`));
    await shipper.close();
    expect(serverLines(fixture.server, testId)).toEqual(Array.from({ length: 50 }, (_, i) => `line ${i + 1}`));
    expect(await readFile(victim, "utf8")).toBe("untouched\n");
  });
});
