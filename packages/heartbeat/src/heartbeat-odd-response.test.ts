import { afterEach, describe, expect, it } from "vitest";

import { type ServerCommand } from "@kitt/protocol";

import { NAME, useHarness } from "./test-harness.js";

const h = useHarness(afterEach);
const HEARTBEAT = /\/heartbeat$/;
const DEPTH = 300_000;

type Server = Awaited<ReturnType<typeof h.server>>;

function command(id: string): Record<string, unknown> {
  return {
    command_id: `c${id}`,
    test_id: `t${id}`,
    type: "run_test",
    payload: { model_path: "/models/Qwen2.5-0.5B-Instruct", engine_name: "vllm", suite_name: "quick" },
  };
}

/**
 * The next heartbeat answer, as raw JSON text (a 300,000-level value cannot
 * go through the fake server's own JSON.stringify).
 */
function answer(srv: Server, text: string): void {
  srv.failNext(1, 200, text, { path: HEARTBEAT, headers: { "content-type": "application/json" } });
}

function envelope(srv: Server, fields: Record<string, unknown>): string {
  return JSON.stringify({ ack: true, agent_id: srv.agent(NAME)?.id, commands: [], settings: {}, ...fields });
}

/** What the runner's job journal does with each command it takes: it must be able to. */
function persisted(commands: ServerCommand[]): string[] {
  return commands.map((c) => JSON.stringify(c));
}

async function started(srv: Server) {
  const t = h.loop(srv);
  await t.loop.start();
  await t.sleeper.next(); // registered, first heartbeat answered by the server itself
  return t;
}

async function beat(t: Awaited<ReturnType<typeof started>>): Promise<void> {
  await t.sleeper.fireNext();
  await t.sleeper.next();
}

describe("HeartbeatLoop: one odd part of a response costs only itself", () => {
  it("valid, 300,000-level payload, valid: both good commands run, the bad one goes to the handler as invalid with its ids", async () => {
    const srv = await h.server();
    const t = await started(srv);
    const deep = `${"[".repeat(DEPTH)}${"]".repeat(DEPTH)}`;
    const bad = `{"command_id":"c2","test_id":"t2","type":"run_test","payload":{"model_path":"/m","engine_name":"vllm","suite_name":"quick","runtime_config":{"x":${deep}}}}`;
    const body = envelope(srv, { settings: { heartbeat_interval_s: "60" } }).replace('"commands":[]', `"commands":[${JSON.stringify(command("1"))},${bad},${JSON.stringify(command("3"))}]`);
    answer(srv, body);
    await beat(t);
    expect(t.commands.map((c) => [c.kind, c.command_id, c.test_id])).toEqual([
      ["run_test", "c1", "t1"],
      ["invalid", "c2", "t2"],
      ["run_test", "c3", "t3"],
    ]);
    expect(t.commands[1]).toMatchObject({ error: "invalid command: nests deeper than 32 levels" });
    expect(persisted(t.commands)).toHaveLength(3);
    expect(t.settings.at(-1)).toEqual({ heartbeat_interval_s: 60 });
    expect(t.loop.state).toMatchObject({ health: "ok", commandsDispatched: 3, consecutiveFailures: 0 });
    expect(t.logger.records.filter((r) => r.level === "error")).toEqual([]);
  });

  it.each([
    ["ack is no boolean", { ack: "yes" }, 'heartbeat response: ack: expected a boolean, got "yes"; taken as true'],
    ["agent_id is empty", { agent_id: "" }, 'heartbeat response: agent_id: expected a non-empty id, got ""; not adopted'],
    ["settings is no object", { settings: "auto_cleanup=false" }, 'heartbeat response: settings: expected an object, got "auto_cleanup=false"; ignored'],
  ])("%s: the command still runs, with one warning, not one per heartbeat", async (_name, odd, warning) => {
    const srv = await h.server();
    const t = await started(srv);
    const id = t.loop.state.agentId;
    answer(srv, envelope(srv, { commands: [command("1")], ...odd }));
    await beat(t);
    answer(srv, envelope(srv, { commands: [command("2")], ...odd }));
    await beat(t);
    expect(t.commands.map((c) => [c.kind, c.command_id])).toEqual([
      ["run_test", "c1"],
      ["run_test", "c2"],
    ]);
    expect(t.loop.state).toMatchObject({ agentId: id, health: "ok", commandsDispatched: 2 });
    expect(t.lines("warn", /^heartbeat response: /).map((r) => r.message)).toEqual([warning]);
  });

  it("commands that is no array: the settings and agent id of the response still apply", async () => {
    const srv = await h.server();
    const t = await started(srv);
    answer(srv, envelope(srv, { commands: {}, agent_id: "renamed-by-server", settings: { auto_cleanup: "False" } }));
    await beat(t);
    expect(t.commands).toEqual([]);
    expect(t.settings.at(-1)).toEqual({ auto_cleanup: false });
    expect(t.ids.at(-1)).toBe("renamed-by-server");
    expect(t.lines("warn", /^heartbeat response: commands: expected an array, got an object; no command taken$/)).toHaveLength(1);
  });

  it("an unreadable setting is skipped with one warning; the other settings and the command apply", async () => {
    const srv = await h.server();
    const t = await started(srv);
    answer(srv, envelope(srv, { commands: [command("1")], settings: { auto_cleanup: { nested: [1, 2] }, heartbeat_interval_s: "45", model_storage_dir: "/data/models" } }));
    await beat(t);
    expect(t.commands.map((c) => c.command_id)).toEqual(["c1"]);
    expect(t.settings.at(-1)).toEqual({ heartbeat_interval_s: 45, model_storage_dir: "/data/models" });
    expect(t.lines("warn", /^server settings partly ignored: auto_cleanup: expected a string, got an object$/)).toHaveLength(1);
  });
});
