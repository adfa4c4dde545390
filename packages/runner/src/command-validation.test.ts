import { describe, expect, it } from "vitest";

import { parseServerCommand, type ServerCommand } from "@kitt/protocol";

import { checkCommand } from "./command-validation.js";

function cmd(over: Record<string, unknown> = {}, payload: Record<string, unknown> = {}): ServerCommand {
  return parseServerCommand({
    command_id: "a1b2c3d4e5f60718",
    test_id: "0718a1b2c3d4e5f6",
    type: "run_test",
    payload: { model_path: "/models/Qwen2.5-0.5B", engine_name: "vllm", suite_name: "quick", benchmark_name: "throughput", engine_mode: "docker", profile_id: "", ...payload },
    ...over,
  });
}

function errorOf(command: ServerCommand): string {
  const checked = checkCommand(command);
  if (checked.ok) throw new Error("expected a refusal");
  return checked.error;
}

describe("checkCommand", () => {
  it("accepts a server's run_test command and normalises empty optional names away", () => {
    expect(checkCommand(cmd())).toEqual({
      ok: true,
      spec: {
        kind: "run_test",
        commandId: "a1b2c3d4e5f60718",
        testId: "0718a1b2c3d4e5f6",
        modelPath: "/models/Qwen2.5-0.5B",
        engine: "vllm",
        suite: "quick",
        engineMode: "docker",
        benchmarkName: "throughput",
        profileId: undefined,
      },
    });
  });

  it("passes registry names through as model paths", () => {
    expect(checkCommand(cmd({}, { model_path: "qwen2.5:7b", engine_name: "ollama" }))).toMatchObject({ ok: true, spec: { modelPath: "qwen2.5:7b" } });
  });

  it.each([
    [{ command_id: "x/../../dir" }, {}, 'command_id must match ^[A-Za-z0-9_-]{1,64}$, got "x/../../dir"'],
    [{ test_id: "a".repeat(65) }, {}, "test_id must match"],
    [{ test_id: "t.1" }, {}, 'got "t.1"'],
    [{}, { engine_name: "vllm; rm -rf /" }, 'payload.engine_name must be one of vllm, llama_cpp, ollama, exllamav2, mlx, got "vllm; rm -rf /"'],
    [{}, { suite_name: "huge" }, 'payload.suite_name must be one of quick, standard, performance, got "huge"'],
    [{}, { engine_mode: "docker --privileged" }, 'payload.engine_mode must be letters, digits, ".", "_" or "-" (at most 64), got "docker --privileged"'],
    [{}, { profile_id: "../p" }, "payload.profile_id must be letters"],
    [{}, { model_path: "../../etc" }, 'payload.model_path must not contain ".." segments, got "../../etc"'],
    [{}, { model_path: "/models/a/../../etc/shadow" }, '".." segments'],
    [{}, { model_path: "/models/a\u0000b" }, "payload.model_path must not contain control characters"],
    [{}, { model_path: "/models/a\nb" }, "control characters"],
    [{}, { model_path: "--help" }, 'payload.model_path must not start with "-", got "--help"'],
    [{}, { model_path: "" }, "payload.model_path must be a non-empty path"],
    [{}, { model_path: "/m".repeat(3000) }, "payload.model_path is longer than 4096 characters"],
  ])("refuses %j %j", (over, payload, message) => {
    const error = errorOf(cmd(over, payload));
    expect(error.startsWith("invalid run_test command: ")).toBe(true);
    expect(error).toContain(message);
  });

  it("refuses a non-string model path (schema check in @kitt/protocol)", () => {
    expect(errorOf(cmd({}, { model_path: 42 }))).toMatch(/payload\.model_path/);
  });

  it("reports unsupported types by name, after checking their ids", () => {
    expect(errorOf(cmd({ type: "flash_bios" }))).toBe("unsupported command type: flash_bios");
    expect(errorOf(cmd({ type: "run_container", command_id: "../x" }))).toMatch(/^invalid run_container command: command_id must match/);
  });

  it("accepts cleanup_storage for one model or `__cleanup__`", () => {
    const base = { type: "cleanup_storage", command_id: "k1", test_id: "k1" };
    expect(checkCommand(cmd(base, { model_path: "__cleanup__", engine_name: "cleanup" }))).toEqual({
      ok: true,
      spec: { kind: "cleanup_storage", commandId: "k1", testId: "k1", modelPath: undefined },
    });
    expect(checkCommand(cmd(base, { model_path: "/data/models/a", engine_name: "cleanup" }))).toMatchObject({ ok: true, spec: { modelPath: "/data/models/a" } });
    expect(errorOf(cmd(base, { model_path: "/data/../etc", engine_name: "cleanup" }))).toContain('".." segments');
  });
});
