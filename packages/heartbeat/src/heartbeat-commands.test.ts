import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { useTempDir } from "@kitt/testkit";
import { afterEach, describe, expect, it, vi } from "vitest";

import { COMMAND_LEDGER_FILE, MemoryCommandStore } from "./command-store.js";
import { NAME, useHarness } from "./test-harness.js";

const h = useHarness(afterEach);
const tempDir = useTempDir(afterEach, "kitt-hb-state-");
const HEARTBEAT = /\/heartbeat$/;

const job = { agent_name: NAME, model_path: "/models/Qwen2.5-0.5B-Instruct", engine_name: "vllm", suite_name: "quick" };

/** A heartbeat answer that hands `command` out again, as a replayed response would. */
function redeliver(srv: Awaited<ReturnType<typeof h.server>>, command: unknown): void {
  srv.failNext(1, 200, { ack: true, agent_id: srv.agent(NAME)?.id, commands: [command], settings: {} }, { path: HEARTBEAT });
}

describe("HeartbeatLoop: commands", () => {
  it("dispatches a queued run_test once, typed, and ignores a second delivery", async () => {
    const srv = await h.server();
    const stateDir = await tempDir();
    const t = h.loop(srv, { stateDir });
    const row = srv.queueTest(job);
    await t.loop.start();
    await t.sleeper.next();
    expect(t.commands).toHaveLength(1);
    expect(t.commands[0]).toMatchObject({
      kind: "run_test",
      command_id: row.command_id,
      test_id: row.id,
      payload: { model_path: job.model_path, engine_name: "vllm", suite_name: "quick" },
    });

    redeliver(srv, srv.dispatched[0]);
    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(t.commands).toHaveLength(1);
    expect(t.loop.state).toMatchObject({ commandsDispatched: 1, commandsDuplicate: 1, health: "ok" });
    expect(t.lines("warn", new RegExp(`command ${row.command_id} .*delivered again`))).toHaveLength(1);

    const ledger = JSON.parse(await readFile(join(stateDir, COMMAND_LEDGER_FILE), "utf8")) as { ids: string[] };
    expect(ledger.ids).toEqual([row.command_id]);
  });

  it("remembers dispatched commands across a restart of the loop", async () => {
    const srv = await h.server();
    const stateDir = await tempDir();
    srv.queueTest(job);
    const first = h.loop(srv, { stateDir });
    await first.loop.start();
    await first.sleeper.next();
    await first.loop.stop();
    expect(first.commands).toHaveLength(1);
    const delivered = srv.dispatched[0];

    // A new process: same state dir, the old command replayed, a new one queued behind it.
    const second = h.loop(srv, { stateDir });
    redeliver(srv, delivered);
    const next = srv.queueTest({ ...job, engine_name: "ollama" });
    await second.loop.start();
    await second.sleeper.fireNext();
    await second.sleeper.next();
    expect(second.commands.map((c) => c.command_id)).toEqual([next.command_id]);
    expect(second.loop.state).toMatchObject({ commandsDispatched: 1, commandsDuplicate: 1 });
  });

  it("stop() lets an in-flight heartbeat finish so a command already handed out is not lost", async () => {
    const srv = await h.server();
    srv.delayNext(1, 150, { path: HEARTBEAT });
    const row = srv.queueTest(job);
    const t = h.loop(srv, { agentId: NAME });
    await t.loop.start();
    await vi.waitFor(() => expect(srv.requests).toHaveLength(1), { timeout: 2_000, interval: 5 });
    await t.loop.stop();
    expect(srv.getTest(row.id)?.status).toBe("dispatched");
    expect(t.commands.map((c) => c.command_id)).toEqual([row.command_id]);
    expect(t.sleeper.requested).toEqual([]);
  });

  it("a dispatcher that throws or rejects is logged; the command stays accepted and the loop goes on", async () => {
    const srv = await h.server();
    const seen: string[] = [];
    const t = h.loop(srv, {
      commandStore: new MemoryCommandStore(),
      onCommand: (c) => {
        seen.push(c.command_id ?? "?");
        if (seen.length === 1) throw new Error("queue is full");
        return Promise.reject(new Error("disk on fire"));
      },
    });
    const a = srv.queueTest(job);
    const b = srv.queueTest(job);
    await t.loop.start();
    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(seen).toEqual([a.command_id, b.command_id]);
    await new Promise((r) => setImmediate(r));
    expect(t.lines("error", new RegExp(`dispatcher failed on command ${a.command_id} .*queue is full; the command stays accepted`))).toHaveLength(1);
    expect(t.lines("error", new RegExp(`dispatcher failed on command ${b.command_id} .*disk on fire`))).toHaveLength(1);

    redeliver(srv, srv.dispatched[0]);
    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(seen).toHaveLength(2);
    expect(t.loop.state).toMatchObject({ health: "ok", successes: 3, commandsDispatched: 2, commandsDuplicate: 1 });
  });

  it("hands over other types and broken commands too, for the dispatcher to report failed", async () => {
    const srv = await h.server();
    const t = h.loop(srv);
    const cleanup = srv.queueCommand(NAME, "cleanup_storage", {});
    const engine = srv.queueCommand(NAME, "start_engine", { engine_name: "vllm" });
    await t.loop.start();
    await t.sleeper.fireNext();
    await t.sleeper.next();
    redeliver(srv, { command_id: "bad/../id", type: "run_test", payload: "nope" });
    await t.sleeper.fireNext();
    await t.sleeper.next();
    expect(t.commands.map((c) => [c.kind, c.command_id])).toEqual([
      ["cleanup_storage", cleanup.command_id],
      ["unknown", engine.command_id],
      // An id unfit for a URL or a file name is not carried.
      ["invalid", undefined],
    ]);
  });

  it("dispatches even when the ledger cannot be written, and says so", async () => {
    const srv = await h.server();
    const failing = new MemoryCommandStore();
    failing.addMany = () => Promise.reject(new Error("EROFS: read-only file system"));
    const t = h.loop(srv, { commandStore: failing });
    const row = srv.queueTest(job);
    await t.loop.start();
    await t.sleeper.next();
    expect(t.commands.map((c) => c.command_id)).toEqual([row.command_id]);
    expect(t.lines("error", /could not record 1 command\(s\) as dispatched \(EROFS: read-only file system\); dispatching anyway/)).toHaveLength(1);
  });

  it("an unusable state dir falls back to memory with an error line, heartbeats go on", async () => {
    const srv = await h.server();
    const dir = await tempDir();
    const { mkdir } = await import("node:fs/promises");
    await mkdir(join(dir, COMMAND_LEDGER_FILE));
    const t = h.loop(srv, { stateDir: dir });
    srv.queueTest(job);
    await t.loop.start();
    await t.sleeper.next();
    expect(t.commands).toHaveLength(1);
    expect(t.lines("error", /cannot read command ledger .*; remembering dispatched commands in memory only/)).toHaveLength(1);
  });
});
