import { describe, expect, it } from "vitest";

import { ProtocolError } from "./errors.js";
import type { HeartbeatResponse } from "./messages.js";
import { isCleanupAll, isSafeId, parseCommandRequest, parseHeartbeatResponse, parseRegisterResponse, parseServerCommand } from "./parse.js";
import type { SchemaName } from "./schemas.js";
import { fixture } from "./test-fixtures.js";
import { check, validate } from "./validate.js";

const valid: [SchemaName, string][] = [
  ["registerRequest", "register-request.json"],
  ["registerResponse", "register-response.json"],
  ["heartbeatRequest", "heartbeat-request.json"],
  ["heartbeatResponse", "heartbeat-response-idle.json"],
  ["heartbeatResponse", "heartbeat-response-run-test.json"],
  ["heartbeatResponse", "heartbeat-response-cleanup.json"],
  ["heartbeatResponse", "heartbeat-response-start-engine.json"],
  ["logLine", "log-line.json"],
  ["statusUpdate", "status-running.json"],
  ["statusUpdate", "status-completed.json"],
  ["statusUpdate", "status-failed.json"],
  ["resultReport", "result-report.json"],
  ["testRow", "test-row.json"],
  ["testList", "test-list.json"],
  ["testLogs", "test-logs.json"],
  ["packageDigest", "package-digest.json"],
  ["health", "health.json"],
  ["version", "version.json"],
  ["errorBody", "error.json"],
  ["commandRequest", "agent-command-request.json"],
  ["commandAccepted", "agent-command-accepted.json"],
  ["agentStatusResponse", "agent-status-response.json"],
  ["sseLogEvent", "sse-log-event.json"],
];

const malformed: [SchemaName, string, string][] = [
  ["registerResponse", "malformed/register-response-no-id.json", "invalid register response: agent_id is required"],
  ["heartbeatResponse", "malformed/heartbeat-response-commands-not-array.json", "invalid heartbeat response: commands must be array,null"],
  ["statusUpdate", "malformed/status-bogus.json", 'invalid status update: status must be one of "running", "completed", "failed", got "dispatched"'],
  ["statusUpdate", "malformed/status-failed-no-error.json", "invalid status update: error is required"],
  ["testList", "malformed/test-list-items-not-array.json", "invalid test list: items must be array"],
  ["packageDigest", "malformed/package-digest-short.json", "invalid package digest: sha256 must match pattern"],
  ["logLine", "malformed/log-line-missing.json", "invalid log line: line is required"],
];

describe("schemas", () => {
  it.each(valid)("%s accepts %s", (schema, file) => {
    expect(check(schema, fixture(file))).toBeUndefined();
  });

  it.each(malformed)("%s rejects %s naming the field", (schema, file, message) => {
    const problem = check(schema, fixture(file));
    expect(problem).toBeInstanceOf(ProtocolError);
    expect(problem?.message).toContain(message);
  });

  it("validate throws a typed error, never a raw exception", () => {
    expect(() => validate("registerResponse", "not an object")).toThrow(ProtocolError);
    expect(() => validate("registerResponse", null)).toThrow(/register response: \(root\) must be object/);
    expect(() => validate("heartbeatRequest", { status: "busy" })).toThrow(/status must be one of "idle", "running", "error", got "busy"/);
  });

  it("what the agent writes is exact: unknown keys are refused", () => {
    expect(check("logLine", { line: "x", extra: 1 })?.message).toBe("invalid log line: extra is not allowed");
    expect(check("statusUpdate", { status: "running", error: "x" })?.message).toBe("invalid status update: error is not allowed here");
    expect(check("resultReport", { command_id: "c", status: "completed", container_id: "", error: "", result_data: [] })?.field).toBe("result_data");
  });

  it("heartbeat request accepts the per-GPU extra field", () => {
    expect(
      check("heartbeatRequest", { status: "running", gpus: [{ index: 0, name: "NVIDIA H200", uuid: "GPU-1", utilization_pct: 99 }] }),
    ).toBeUndefined();
  });
});

describe("parseRegisterResponse", () => {
  it("reads the documented response", () => {
    expect(parseRegisterResponse(fixture("register-response.json"))).toEqual({ agent_id: "3f9c2a7b1d4e5f60", heartbeat_interval_s: 30 });
  });
  it("tolerates a numeric string interval and a missing one", () => {
    expect(parseRegisterResponse({ agent_id: "a", heartbeat_interval_s: "45" }).heartbeat_interval_s).toBe(45);
    expect(parseRegisterResponse({ agent_id: "a" })).toEqual({ agent_id: "a" });
  });
  it("rejects a nonsense interval", () => {
    expect(() => parseRegisterResponse({ agent_id: "a", heartbeat_interval_s: "soon" })).toThrow(
      'invalid register response: heartbeat_interval_s must be a positive number, got "soon"',
    );
  });
});

describe("parseHeartbeatResponse", () => {
  it("normalises settings and types the run_test command", () => {
    const res: HeartbeatResponse = parseHeartbeatResponse(fixture("heartbeat-response-run-test.json"));
    expect(res.agent_id).toBe("3f9c2a7b1d4e5f60");
    expect(res.settings).toEqual({
      auto_cleanup: false,
      heartbeat_interval_s: 60,
      model_share_mount: "/mnt/models",
      model_share_source: "nas:/volume1/models",
      model_storage_dir: "/data/models",
    });
    expect(res.commands).toHaveLength(1);
    const cmd = res.commands[0];
    expect(cmd?.kind).toBe("run_test");
    if (cmd?.kind === "run_test") {
      expect(cmd.payload.model_path).toBe("/models/Qwen2.5-0.5B-Instruct");
      expect(cmd.payload.engine_name).toBe("vllm");
    }
  });

  it("keeps cleanup_storage with __cleanup__", () => {
    const res = parseHeartbeatResponse(fixture("heartbeat-response-cleanup.json"));
    expect(res.commands[0]?.kind).toBe("cleanup_storage");
    expect(isCleanupAll(res.commands[0]!)).toBe(true);
    expect(res.settings.auto_cleanup).toBe(true);
  });

  it("keeps an unknown command type instead of dropping it", () => {
    const res = parseHeartbeatResponse(fixture("heartbeat-response-start-engine.json"));
    expect(res.commands).toEqual([
      expect.objectContaining({ kind: "unknown", type: "start_engine", command_id: "beef000000000002", test_id: "beef000000000002" }),
    ]);
  });

  it("keeps a command with a bad payload as invalid, with its ids", () => {
    const res = parseHeartbeatResponse(fixture("malformed/heartbeat-response-bad-payload.json"));
    expect(res.commands[0]).toMatchObject({
      kind: "invalid",
      command_id: "a1b2c3d4e5f60718",
      test_id: "0f1e2d3c4b5a6978",
      type: "run_test",
      error: "invalid run_test command: payload.model_path is required",
    });
  });

  it("one bad command does not hide the others", () => {
    const good = (fixture("heartbeat-response-run-test.json") as { commands: unknown[] }).commands[0];
    const res = parseHeartbeatResponse({ ack: true, commands: [42, good], settings: {} });
    expect(res.commands.map((c) => c.kind)).toEqual(["invalid", "run_test"]);
  });

  it("treats missing commands/settings as empty", () => {
    expect(parseHeartbeatResponse({ ack: true })).toEqual({ ack: true, commands: [], settings: {}, settingsProblems: [], problems: [] });
    expect(parseHeartbeatResponse({ ack: true, commands: null, settings: null }).commands).toEqual([]);
  });

  it("names an odd envelope field in problems and keeps the rest", () => {
    expect(parseHeartbeatResponse(fixture("malformed/heartbeat-response-commands-not-array.json")).problems).toEqual([
      expect.stringMatching(/^commands: expected an array, got an object; no command taken$/),
    ]);
    expect(parseHeartbeatResponse({ ack: "yes" })).toMatchObject({ ack: true, problems: ['ack: expected a boolean, got "yes"; taken as true'] });
    expect(() => parseHeartbeatResponse([])).toThrow("invalid heartbeat response: (root) must be an object, got an array");
  });
});

describe("parseServerCommand", () => {
  it("marks a non-object as invalid", () => {
    expect(parseServerCommand("run_test")).toMatchObject({ kind: "invalid", command_id: undefined });
  });
});

describe("agent API command request", () => {
  it("accepts the documented body and defaults test_id", () => {
    expect(parseCommandRequest(fixture("agent-command-request.json")).test_id).toBe("0f1e2d3c4b5a6978");
    expect(parseCommandRequest({ command_id: "abc", type: "cancel", payload: {} }).test_id).toBe("abc");
  });
  it("refuses ids that could escape a directory or a URL", () => {
    expect(() => parseCommandRequest({ command_id: "x/../../dir", test_id: "t", type: "run_test", payload: {} })).toThrow(
      /command_id must match pattern/,
    );
    expect(isSafeId("x/../../dir")).toBe(false);
    expect(isSafeId("a".repeat(65))).toBe(false);
    expect(isSafeId("a1b2c3d4e5f60718")).toBe(true);
  });
});
