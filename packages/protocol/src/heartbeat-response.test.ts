import { describe, expect, it } from "vitest";

import { describeForeign, jsonTextTooDeep, jsonValueProblem } from "./json-limits.js";
import { COMMAND_LIMITS, parseHeartbeatResponse, parseServerCommand } from "./parse.js";
import { normalizeSettings } from "./settings.js";

const DEPTH = 300_000;

/** JSON text nested `depth` levels: `{"x":[[[...]]]}`. */
function deepText(depth: number): string {
  return `{"x":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;
}

function command(id: string, payload: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    command_id: `c${id}`,
    test_id: `t${id}`,
    type: "run_test",
    payload: { model_path: "/models/Qwen2.5-0.5B-Instruct", engine_name: "vllm", suite_name: "quick", ...payload },
  };
}

/** The body as the client gets it: JSON text parsed by JSON.parse (iterative in V8). */
function wire(text: string): unknown {
  return JSON.parse(text) as unknown;
}

describe("json limits", () => {
  it("finds nesting in JSON text without parsing it, ignoring brackets inside strings", () => {
    expect(jsonTextTooDeep(deepText(DEPTH), 64)).toBe("nests deeper than 64 levels (at character 68)");
    expect(jsonTextTooDeep('{"a":"[[[[[[[[[[","b":"\\"[[[["}', 2)).toBeUndefined();
    expect(jsonTextTooDeep('{"a":[[1]]}', 3)).toBeUndefined();
    expect(jsonTextTooDeep('{"a":[[1]]}', 2)).toMatch(/^nests deeper than 2 levels/);
  });

  it("walks a parsed value 300,000 levels deep without recursion, and bounds its size", () => {
    expect(jsonValueProblem(wire(deepText(DEPTH)), { maxDepth: 32, maxBytes: 1 << 20 })).toBe("nests deeper than 32 levels");
    expect(jsonValueProblem({ a: "x".repeat(2000) }, { maxDepth: 32, maxBytes: 1000 })).toBe("is larger than 1000 bytes");
    expect(jsonValueProblem(new Array(1_000_000).fill(0), { maxDepth: 32, maxBytes: 1000 })).toBe("is larger than 1000 bytes");
    expect(jsonValueProblem({ a: [1, { b: null }], c: "ok" }, { maxDepth: 3, maxBytes: 100 })).toBeUndefined();
    expect(jsonValueProblem({ a: [1, { b: null }] }, { maxDepth: 2, maxBytes: 100 })).toBe("nests deeper than 2 levels");
  });

  it("describes foreign values briefly, never walking or echoing them whole", () => {
    expect(describeForeign(wire(deepText(DEPTH)))).toBe("an object");
    expect(describeForeign([1])).toBe("an array");
    expect(describeForeign("s".repeat(100))).toBe(`"${"s".repeat(37)}..."`);
    expect(describeForeign(undefined)).toBe("nothing");
    expect(describeForeign(false)).toBe("false");
  });
});

describe("parseServerCommand: bounded", () => {
  it("a payload nested 300,000 levels is an invalid command with its ids, not a stack overflow", () => {
    const raw = wire(`{"command_id":"c2","test_id":"t2","type":"run_test","payload":{"model_path":"/m","engine_name":"vllm","suite_name":"quick","runtime_config":${deepText(DEPTH)}}}`);
    expect(parseServerCommand(raw)).toEqual({
      kind: "invalid",
      command_id: "c2",
      test_id: "t2",
      type: "run_test",
      error: `invalid command: nests deeper than ${COMMAND_LIMITS.maxDepth} levels`,
      raw: undefined,
    });
  });

  it("an oversized command is invalid, and only ids fit for a URL are kept", () => {
    const big = parseServerCommand({ ...command("3"), payload: { blob: "x".repeat(COMMAND_LIMITS.maxBytes) } });
    expect(big).toMatchObject({ kind: "invalid", command_id: "c3", test_id: "t3", error: `invalid command: is larger than ${COMMAND_LIMITS.maxBytes} bytes` });
    const unsafe = parseServerCommand({ command_id: "../../x", test_id: "t4", type: "x".repeat(65), payload: 1 });
    expect(unsafe).toMatchObject({ kind: "invalid", command_id: undefined, test_id: "t4", type: undefined });
    expect(parseServerCommand({ ...command("5"), type: "y".repeat(65) })).toMatchObject({
      kind: "invalid",
      test_id: "t5",
      error: "invalid command: type is longer than 64 characters",
    });
  });
});

describe("parseHeartbeatResponse: one bad part costs only itself", () => {
  it("valid, 300,000-deep, valid: the two good commands are typed, the bad one is invalid with its ids", () => {
    const text = `{"ack":true,"agent_id":"a1","commands":[${JSON.stringify(command("1"))},{"command_id":"c2","test_id":"t2","type":"run_test","payload":${deepText(DEPTH)}},${JSON.stringify(command("3"))}],"settings":{"auto_cleanup":"False"}}`;
    const res = parseHeartbeatResponse(wire(text));
    expect(res.commands.map((c) => [c.kind, c.command_id, c.test_id])).toEqual([
      ["run_test", "c1", "t1"],
      ["invalid", "c2", "t2"],
      ["run_test", "c3", "t3"],
    ]);
    expect(res).toMatchObject({ ack: true, agent_id: "a1", settings: { auto_cleanup: false }, problems: [], settingsProblems: [] });
  });

  it.each([
    [{ ack: "yes" }, { ack: true }, 'ack: expected a boolean, got "yes"; taken as true'],
    [{ agent_id: "" }, {}, 'agent_id: expected a non-empty id, got ""; not adopted'],
    [{ agent_id: { x: 1 } }, {}, "agent_id: expected a non-empty id, got an object; not adopted"],
    [{ commands: {} }, {}, "commands: expected an array, got an object; no command taken"],
    [{ commands: "c1" }, {}, 'commands: expected an array, got "c1"; no command taken'],
    [{ settings: [1] }, {}, "settings: expected an object, got an array; ignored"],
  ])("%j: the rest of the response is kept, one problem named", (odd, expected, problem) => {
    const res = parseHeartbeatResponse({ ack: true, agent_id: "a1", commands: [command("1")], settings: { heartbeat_interval_s: "60" }, ...odd });
    expect(res.problems).toEqual([problem]);
    expect(res).toMatchObject(expected);
    if (!("commands" in odd)) expect(res.commands.map((c) => c.kind)).toEqual(["run_test"]);
    if (!("settings" in odd)) expect(res.settings).toEqual({ heartbeat_interval_s: 60 });
    if (!("agent_id" in odd)) expect(res.agent_id).toBe("a1");
  });

  it("a non-object body is refused as a whole, in one line", () => {
    expect(() => parseHeartbeatResponse("ok")).toThrow('invalid heartbeat response: (root) must be an object, got "ok"');
    expect(() => parseHeartbeatResponse(null)).toThrow("invalid heartbeat response: (root) must be an object, got null");
  });
});

describe("normalizeSettings: each key on its own", () => {
  it("an unreadable value is skipped with a short reason; the others apply; unknown keys are never walked", () => {
    const { settings, problems } = normalizeSettings({
      auto_cleanup: wire(deepText(DEPTH)),
      heartbeat_interval_s: "45",
      model_storage_dir: "/d".repeat(3000),
      model_share_mount: ["/mnt"],
      kitt_image: "kitt:1.7",
      model_share_source: "nas:/m",
      some_future_key: wire(deepText(DEPTH)),
    });
    expect(settings).toEqual({ heartbeat_interval_s: 45, kitt_image: "kitt:1.7", model_share_source: "nas:/m" });
    expect(problems).toEqual([
      "auto_cleanup: expected a string, got an object",
      "model_storage_dir: longer than 4096 characters",
      "model_share_mount: expected a string, got an array",
    ]);
  });
});
